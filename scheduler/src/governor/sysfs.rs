//! Linux sysfs power readers: hwmon `power*_input`, RAPL `energy_uj` (intel-rapl
//! powercap) and the Jetson INA3221 rail monitors. Each takes its root directory, so the
//! tests point them at fake trees in temporary directories.

use std::fs;
use std::path::{Path, PathBuf};

use super::{PowerSensor, Reading, SensorError};
use crate::clock::{Instant, as_secs_f64, since};

fn read_int(path: &Path) -> Result<i64, SensorError> {
    let text = fs::read_to_string(path).map_err(|source| SensorError::Io { path: path.to_owned(), source })?;
    let t = text.trim();
    t.parse::<i64>().map_err(|_| SensorError::Parse {
        path: path.to_owned(),
        text: t.chars().take(64).collect(),
    })
}

fn read_text(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// Sorted entries of `dir` whose names satisfy `keep`; an unreadable directory is empty.
fn entries(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(&keep))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Index `N` of a file named `{prefix}N{suffix}`.
fn index_of(name: &str, prefix: &str, suffix: &str) -> Option<u32> {
    name.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok()
}

fn file_name(p: &Path) -> &str {
    p.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

/// hwmon power readers (`/sys/class/hwmon/hwmon*/power*_input`, microwatts) with the
/// device's highest `temp*_input` (millidegrees) as its temperature.
#[derive(Debug)]
pub struct Hwmon {
    name: String,
    power: Vec<PathBuf>,
    temp: Vec<PathBuf>,
}

impl Hwmon {
    /// The first hwmon device under `root` (normally `/sys/class/hwmon`) that has a power
    /// input and whose `name` equals `device` when one is given (e.g. `amdgpu`).
    pub fn discover(root: &Path, device: Option<&str>) -> Result<Self, SensorError> {
        for dir in entries(root, |n| n.starts_with("hwmon")) {
            let name = read_text(&dir.join("name")).unwrap_or_default();
            if device.is_some_and(|d| d != name) {
                continue;
            }
            let mut power = entries(&dir, |n| index_of(n, "power", "_input").is_some());
            if power.is_empty() {
                power = entries(&dir, |n| index_of(n, "power", "_average").is_some());
            }
            if power.is_empty() {
                continue;
            }
            let temp = entries(&dir, |n| index_of(n, "temp", "_input").is_some());
            return Ok(Hwmon { name: format!("hwmon:{name}"), power, temp });
        }
        Err(SensorError::NotFound { what: "hwmon device with power*_input", root: root.to_owned() })
    }
}

impl PowerSensor for Hwmon {
    fn name(&self) -> &str {
        &self.name
    }

    fn read(&mut self, _now: Instant) -> Result<Reading, SensorError> {
        let mut uw = 0i64;
        for p in &self.power {
            uw += read_int(p)?;
        }
        let mut temp: Option<f32> = None;
        for p in &self.temp {
            let t = read_int(p)? as f32 / 1000.0;
            temp = Some(temp.map_or(t, |m: f32| m.max(t)));
        }
        Ok(Reading { power_w: Some(uw as f32 / 1e6), temp_c: temp })
    }
}

#[derive(Debug)]
struct RaplZone {
    energy: PathBuf,
    max_uj: u64,
    last_uj: Option<u64>,
}

/// RAPL package energy counters (`/sys/class/powercap/intel-rapl:N/energy_uj`).
///
/// Power is the energy difference between two reads over their time difference; the
/// counter wraps at `max_energy_range_uj`. The first read has no power yet.
#[derive(Debug)]
pub struct Rapl {
    zones: Vec<RaplZone>,
    last_t: Option<Instant>,
}

impl Rapl {
    /// Every top-level package zone (`intel-rapl:N`, not sub-zones `intel-rapl:N:M`)
    /// under `root` (normally `/sys/class/powercap`).
    pub fn discover(root: &Path) -> Result<Self, SensorError> {
        let mut zones = Vec::new();
        for dir in entries(root, |n| n.strip_prefix("intel-rapl:").is_some_and(|r| r.parse::<u32>().is_ok())) {
            let energy = dir.join("energy_uj");
            if !energy.exists() {
                continue;
            }
            let max_uj = read_int(&dir.join("max_energy_range_uj"))?;
            let max_uj = u64::try_from(max_uj).map_err(|_| SensorError::Parse {
                path: dir.join("max_energy_range_uj"),
                text: max_uj.to_string(),
            })?;
            zones.push(RaplZone { energy, max_uj, last_uj: None });
        }
        if zones.is_empty() {
            return Err(SensorError::NotFound { what: "intel-rapl package zone with energy_uj", root: root.to_owned() });
        }
        Ok(Rapl { zones, last_t: None })
    }
}

impl PowerSensor for Rapl {
    fn name(&self) -> &str {
        "rapl"
    }

    fn read(&mut self, now: Instant) -> Result<Reading, SensorError> {
        let mut delta_uj = 0u64;
        let mut complete = true;
        for z in &mut self.zones {
            let raw = read_int(&z.energy)?;
            let e = u64::try_from(raw).map_err(|_| SensorError::Parse { path: z.energy.clone(), text: raw.to_string() })?;
            match z.last_uj {
                Some(prev) if e >= prev => delta_uj += e - prev,
                Some(prev) => delta_uj += (z.max_uj.saturating_sub(prev)) + e,
                None => complete = false,
            }
            z.last_uj = Some(e);
        }
        let power_w = match self.last_t {
            Some(t0) if complete && now > t0 => Some((delta_uj as f64 / 1e6 / as_secs_f64(since(t0, now))) as f32),
            _ => None,
        };
        self.last_t = Some(now);
        Ok(Reading { power_w, temp_c: None })
    }
}

#[derive(Debug)]
enum InaChannel {
    /// hwmon driver (JetPack 5+): millivolts and milliamps.
    Hwmon { volts: PathBuf, amps: PathBuf },
    /// Legacy iio driver (JetPack 4): milliwatts.
    Iio { power: PathBuf },
}

/// Jetson INA3221 rail monitors.
///
/// Looks under `root` (normally `/sys/bus/i2c/drivers`) for the hwmon driver
/// (`ina3221/*/hwmon/hwmon*/in{N}_label`, `in{N}_input` mV, `curr{N}_input` mA) and the
/// legacy iio driver (`ina3221x/*/iio:device*/rail_name_{N}`, `in_power{N}_input` mW).
/// With a rail name only that rail is read; without one, the `VDD_IN` (module input)
/// rail if present, else the sum of all rails.
#[derive(Debug)]
pub struct Ina3221 {
    channels: Vec<InaChannel>,
}

impl Ina3221 {
    /// Finds the rails; see the type documentation.
    pub fn discover(root: &Path, rail: Option<&str>) -> Result<Self, SensorError> {
        let mut all: Vec<(String, InaChannel)> = Vec::new();
        for dev in entries(&root.join("ina3221"), |_| true) {
            for hw in entries(&dev.join("hwmon"), |n| n.starts_with("hwmon")) {
                for label in entries(&hw, |n| index_of(n, "in", "_label").is_some()) {
                    let Some(n) = index_of(file_name(&label), "in", "_label") else { continue };
                    let volts = hw.join(format!("in{n}_input"));
                    let amps = hw.join(format!("curr{n}_input"));
                    if volts.exists() && amps.exists() {
                        all.push((read_text(&label).unwrap_or_default(), InaChannel::Hwmon { volts, amps }));
                    }
                }
            }
        }
        for dev in entries(&root.join("ina3221x"), |_| true) {
            for iio in entries(&dev, |n| n.starts_with("iio:device")) {
                for name in entries(&iio, |n| index_of(n, "rail_name_", "").is_some()) {
                    let Some(n) = index_of(file_name(&name), "rail_name_", "") else { continue };
                    let power = iio.join(format!("in_power{n}_input"));
                    if power.exists() {
                        all.push((read_text(&name).unwrap_or_default(), InaChannel::Iio { power }));
                    }
                }
            }
        }
        let want = rail.or_else(|| all.iter().any(|(l, _)| l == "VDD_IN").then_some("VDD_IN"));
        let channels: Vec<InaChannel> = match want {
            Some(w) => all.into_iter().filter(|(l, _)| l == w).map(|(_, c)| c).collect(),
            None => all.into_iter().map(|(_, c)| c).collect(),
        };
        if channels.is_empty() {
            return Err(SensorError::NotFound { what: "INA3221 rail", root: root.to_owned() });
        }
        Ok(Ina3221 { channels })
    }
}

impl PowerSensor for Ina3221 {
    fn name(&self) -> &str {
        "ina3221"
    }

    fn read(&mut self, _now: Instant) -> Result<Reading, SensorError> {
        let mut w = 0.0f64;
        for c in &self.channels {
            w += match c {
                InaChannel::Hwmon { volts, amps } => read_int(volts)? as f64 * read_int(amps)? as f64 / 1e6,
                InaChannel::Iio { power } => read_int(power)? as f64 / 1e3,
            };
        }
        Ok(Reading { power_w: Some(w as f32), temp_c: None })
    }
}
