//! NVIDIA GPUs through NVML (`nvml-wrapper`; `libnvidia-ml.so` is loaded at run time, so
//! this builds on machines without the driver and fails with a clear error there).

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{TemperatureSensor, TemperatureThreshold};

use super::{PowerSensor, Reading, SensorError};
use crate::clock::Instant;

/// Power (`nvmlDeviceGetPowerUsage`, milliwatts) and GPU temperature of one device.
pub struct NvmlSensor {
    nvml: Nvml,
    index: u32,
    name: String,
}

impl std::fmt::Debug for NvmlSensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlSensor").field("index", &self.index).field("name", &self.name).finish()
    }
}

fn err(what: &str, e: nvml_wrapper::error::NvmlError) -> SensorError {
    SensorError::Nvml(format!("{what}: {e} (is the NVIDIA driver installed, and in a container, was the GPU passed through?)"))
}

impl NvmlSensor {
    /// Loads NVML and opens GPU `index`.
    pub fn open(index: u32) -> Result<Self, SensorError> {
        let nvml = Nvml::init().map_err(|e| err("nvmlInit", e))?;
        let name = {
            let dev = nvml.device_by_index(index).map_err(|e| err("nvmlDeviceGetHandleByIndex", e))?;
            dev.name().map_err(|e| err("nvmlDeviceGetName", e))?
        };
        Ok(NvmlSensor { nvml, index, name: format!("nvml:{name}") })
    }

    /// The driver's slowdown (throttle) temperature, °C, to configure the thermal model.
    pub fn slowdown_temp_c(&self) -> Result<f32, SensorError> {
        let dev = self.nvml.device_by_index(self.index).map_err(|e| err("nvmlDeviceGetHandleByIndex", e))?;
        dev.temperature_threshold(TemperatureThreshold::Slowdown)
            .map(|t| t as f32)
            .map_err(|e| err("nvmlDeviceGetTemperatureThreshold", e))
    }
}

impl PowerSensor for NvmlSensor {
    fn name(&self) -> &str {
        &self.name
    }

    fn read(&mut self, _now: Instant) -> Result<Reading, SensorError> {
        let dev = self.nvml.device_by_index(self.index).map_err(|e| err("nvmlDeviceGetHandleByIndex", e))?;
        let mw = dev.power_usage().map_err(|e| err("nvmlDeviceGetPowerUsage", e))?;
        let temp = dev.temperature(TemperatureSensor::Gpu).ok().map(|t| t as f32);
        Ok(Reading { power_w: Some(mw as f32 / 1000.0), temp_c: temp })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_a_gpu_or_says_why_not() {
        match NvmlSensor::open(0) {
            Ok(mut s) => {
                let r = s.read(Instant::from_ticks(0)).expect("read NVML power");
                let w = r.power_w.expect("NVML reports power");
                assert!(w > 0.0 && w < 2000.0, "implausible GPU power {w} W");
                println!("{}: {w} W, {:?} °C", s.name(), r.temp_c);
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains("NVML"), "{msg}");
                println!("skipped: no NVML here: {msg}");
            }
        }
    }
}
