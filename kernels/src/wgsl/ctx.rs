//! Device set-up: adapter selection, device creation, error capture and the helpers every
//! op uses to build pipelines and buffers.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the packed 4x8 integer dot product is computed in the convolution shaders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dot4Mode {
    /// WGSL's `dot4I8Packed` (language extension `packed_4x8_integer_dot_product`), used when
    /// the instance reports it; naga lowers it to SPIR-V `OpSDot` where the device has it.
    Native,
    /// A plain WGSL function unpacking the four bytes: for implementations without the extension.
    Emulated,
}

/// Options for [`WgslContext::new`].
#[derive(Clone, Debug)]
pub struct WgslOptions {
    /// Refuse CPU (software) adapters such as llvmpipe: what `--backend auto` asks for.
    pub require_hardware: bool,
    /// Force a dot-product mode; `None` picks [`Dot4Mode::Native`] when the extension exists.
    pub dot4: Option<Dot4Mode>,
    /// How long one frame may wait for the device before the run fails with a timeout.
    pub timeout: Duration,
}

impl Default for WgslOptions {
    fn default() -> Self {
        WgslOptions { require_hardware: false, dot4: None, timeout: Duration::from_secs(20) }
    }
}

/// A device error, or a reason the backend cannot run here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WgslError {
    /// No adapter matched (none at all, or only software ones when hardware was required).
    #[error("no usable wgpu adapter: {0}")]
    NoAdapter(String),
    /// The adapter refused to create a device.
    #[error("wgpu device request failed on {adapter}: {message}")]
    RequestDevice {
        /// Adapter name.
        adapter: String,
        /// What wgpu said.
        message: String,
    },
    /// The device was lost (driver reset, removal, out of memory).
    #[error("wgpu device lost: {0}")]
    Lost(String),
    /// wgpu reported a validation or internal error for a submitted operation.
    #[error("wgpu error in {what}: {message}")]
    Device {
        /// The operation.
        what: String,
        /// What wgpu said.
        message: String,
    },
    /// The device did not finish a frame in time.
    #[error("wgpu device did not finish within {0:?}")]
    Timeout(Duration),
    /// A request that does not fit the prepared plan or the device limits.
    #[error("{0}")]
    Invalid(String),
}

/// What was chosen, for logging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterReport {
    /// Adapter name, e.g. `llvmpipe (LLVM 19.1.7, 256 bits)`.
    pub name: String,
    /// Device type as wgpu reports it (`Cpu`, `DiscreteGpu`, ...).
    pub device_type: String,
    /// Graphics API backend (`Vulkan`, `Gl`, ...).
    pub backend: String,
    /// Driver name and version.
    pub driver: String,
    /// Whether this is a software adapter.
    pub is_cpu: bool,
    /// The dot-product mode in use.
    pub dot4: Dot4Mode,
}

impl fmt::Display for AdapterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {}, driver {}; dot4 {:?})",
            self.name, self.device_type, self.backend, self.driver, self.dot4
        )
    }
}

/// Errors that wgpu reports out of band (the uncaptured-error handler and the device-lost
/// callback), collected so the next `check()` turns them into a `WgslError`.
#[derive(Default)]
struct Faults {
    lost: AtomicBool,
    messages: Mutex<Vec<String>>,
}

/// An open wgpu device with its queue and the adapter it came from.
pub struct WgslContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    report: AdapterReport,
    limits: wgpu::Limits,
    timeout: Duration,
    faults: Arc<Faults>,
    pipelines: Mutex<HashMap<String, (wgpu::ComputePipeline, wgpu::BindGroupLayout)>>,
}

fn adapter_rank(info: &wgpu::AdapterInfo) -> u32 {
    let ty = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 40,
        wgpu::DeviceType::IntegratedGpu => 30,
        wgpu::DeviceType::VirtualGpu => 20,
        wgpu::DeviceType::Other => 10,
        wgpu::DeviceType::Cpu => 0,
    };
    // Among equals prefer the explicit APIs: the GL backend lacks storage-buffer features.
    let api = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 2,
        wgpu::Backend::Gl => 0,
        _ => 1,
    };
    ty + api
}

impl WgslContext {
    /// Lists the adapters wgpu sees, best first: `(name, device type, backend)`.
    pub fn list_adapters() -> Vec<AdapterReport> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        adapters.sort_by_key(|a| std::cmp::Reverse(adapter_rank(&a.get_info())));
        let dot4 = if native_dot4(&instance) { Dot4Mode::Native } else { Dot4Mode::Emulated };
        adapters.iter().map(|a| report_of(&a.get_info(), dot4)).collect()
    }

    /// Opens the best adapter: discrete > integrated > virtual > other > CPU, explicit APIs
    /// before GL. With `require_hardware`, software adapters are refused.
    pub fn new(opts: &WgslOptions) -> Result<WgslContext, WgslError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        if adapters.is_empty() {
            return Err(WgslError::NoAdapter(
                "wgpu found no adapter (on Linux without a GPU, install Mesa's software Vulkan: \
                 apt-get install mesa-vulkan-drivers)"
                    .into(),
            ));
        }
        adapters.sort_by_key(|a| std::cmp::Reverse(adapter_rank(&a.get_info())));
        let adapter = adapters.swap_remove(0);
        let info = adapter.get_info();
        if opts.require_hardware && info.device_type == wgpu::DeviceType::Cpu {
            return Err(WgslError::NoAdapter(format!(
                "only a software adapter is present ({} on {:?}); a real GPU adapter is required",
                info.name, info.backend
            )));
        }
        let dot4 = opts.dot4.unwrap_or(if native_dot4(&instance) { Dot4Mode::Native } else { Dot4Mode::Emulated });
        let limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("vigil-wgsl"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| WgslError::RequestDevice { adapter: info.name.clone(), message: e.to_string() })?;
        let faults = Arc::new(Faults::default());
        {
            let f = Arc::clone(&faults);
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                if let Ok(mut m) = f.messages.lock() {
                    m.push(e.to_string());
                }
            }));
            let f = Arc::clone(&faults);
            device.set_device_lost_callback(move |reason, msg| {
                f.lost.store(true, Ordering::SeqCst);
                if let Ok(mut m) = f.messages.lock() {
                    m.push(format!("{reason:?}: {msg}"));
                }
            });
        }
        Ok(WgslContext {
            device,
            queue,
            report: report_of(&info, dot4),
            limits,
            timeout: opts.timeout,
            faults,
            pipelines: Mutex::new(HashMap::new()),
        })
    }

    /// The adapter in use.
    pub fn report(&self) -> &AdapterReport {
        &self.report
    }

    /// The dot-product mode in use.
    pub fn dot4(&self) -> Dot4Mode {
        self.report.dot4
    }

    /// Device limits (the adapter's own, all requested).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// Turns faults wgpu reported out of band since the last call into an error.
    pub fn check(&self, what: &str) -> Result<(), WgslError> {
        let first = self.faults.messages.lock().ok().and_then(|mut m| {
            let first = m.first().cloned();
            m.clear();
            first
        });
        if self.faults.lost.load(Ordering::SeqCst) {
            return Err(WgslError::Lost(first.unwrap_or_else(|| "no reason given".into())));
        }
        match first {
            Some(message) => Err(WgslError::Device { what: what.into(), message }),
            None => Ok(()),
        }
    }

    /// How long one frame may wait for the device.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Waits for the queue to drain, bounded by the configured timeout.
    pub(crate) fn wait(&self, what: &str) -> Result<(), WgslError> {
        match self.device.poll(wgpu::PollType::Wait { submission_index: None, timeout: Some(self.timeout) }) {
            Ok(_) => self.check(what),
            Err(wgpu::PollError::Timeout) => Err(WgslError::Timeout(self.timeout)),
            Err(e) => {
                self.check(what)?;
                Err(WgslError::Device { what: what.into(), message: e.to_string() })
            }
        }
    }

    /// A storage buffer of at least `bytes` bytes, rounded up to whole `u32` words.
    pub(crate) fn storage(&self, label: &str, bytes: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: words_bytes(bytes),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// A storage buffer initialised with `data` (padded to whole words).
    pub(crate) fn storage_init(&self, label: &str, data: &[u8]) -> wgpu::Buffer {
        let buf = self.storage(label, data.len());
        self.write_padded(&buf, data);
        buf
    }

    /// A uniform buffer holding `data` (a `#[repr(C)]` parameter block, multiple of 16 bytes).
    pub(crate) fn uniform(&self, label: &str, data: &[u8]) -> wgpu::Buffer {
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: data.len().next_multiple_of(16).max(16) as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.write_padded(&buf, data);
        buf
    }

    /// `queue.write_buffer` of `data`, the tail padded to a whole word (the copy alignment).
    pub(crate) fn write_padded(&self, buf: &wgpu::Buffer, data: &[u8]) {
        let whole = data.len() / 4 * 4;
        if whole > 0 {
            self.queue.write_buffer(buf, 0, &data[..whole]);
        }
        if whole < data.len() {
            let mut tail = [0u8; 4];
            tail[..data.len() - whole].copy_from_slice(&data[whole..]);
            self.queue.write_buffer(buf, whole as u64, &tail);
        }
    }

    /// A buffer the host can map for reading, `bytes` rounded up to whole words.
    pub(crate) fn readback(&self, label: &str, bytes: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: words_bytes(bytes),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// A compute pipeline over `source` (the common prelude is prepended) whose bind group
    /// 0 holds: binding 0 uniform parameters, bindings `1..=reads` read-only storage, then
    /// one read-write storage binding for the output.
    pub(crate) fn pipeline(
        &self,
        label: &str,
        source: &str,
        reads: u32,
        constants: &[(&str, f64)],
    ) -> Result<(wgpu::ComputePipeline, wgpu::BindGroupLayout), WgslError> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let code = format!("{}\n{}\n{}", DOT4_PRELUDE[self.report.dot4 as usize], COMMON_WGSL, source);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(code.into()),
        });
        let mut entries = vec![layout_entry(0, wgpu::BufferBindingType::Uniform)];
        for b in 1..=reads {
            entries.push(layout_entry(b, wgpu::BufferBindingType::Storage { read_only: true }));
        }
        entries.push(layout_entry(reads + 1, wgpu::BufferBindingType::Storage { read_only: false }));
        let bgl = self.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(label),
            entries: &entries,
        });
        let layout = self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(label),
            bind_group_layouts: &[Some(&bgl)],
            immediate_size: 0,
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(label),
            layout: Some(&layout),
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions { constants, ..Default::default() },
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(WgslError::Device { what: format!("building shader {label}"), message: e.to_string() });
        }
        Ok((pipeline, bgl))
    }

    /// [`Self::pipeline`], built once per (shader, constants) and reused.
    pub(crate) fn cached_pipeline(
        &self,
        name: &str,
        source: &str,
        reads: u32,
        constants: &[(&str, f64)],
    ) -> Result<(wgpu::ComputePipeline, wgpu::BindGroupLayout), WgslError> {
        let key = format!("{name}{constants:?}");
        let mut cache = self.pipelines.lock().map_err(|_| WgslError::Invalid("pipeline cache poisoned".into()))?;
        if let Some(p) = cache.get(&key) {
            return Ok(p.clone());
        }
        let p = self.pipeline(name, source, reads, constants)?;
        cache.insert(key, p.clone());
        Ok(p)
    }

    /// A bind group for a pipeline made by [`Self::pipeline`]: `uniform`, then `reads`, then `out`.
    pub(crate) fn bind(
        &self,
        label: &str,
        layout: &wgpu::BindGroupLayout,
        uniform: &wgpu::Buffer,
        reads: &[&wgpu::Buffer],
        out: &wgpu::Buffer,
    ) -> wgpu::BindGroup {
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
        for (i, b) in reads.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource: b.as_entire_binding() });
        }
        entries.push(wgpu::BindGroupEntry { binding: reads.len() as u32 + 1, resource: out.as_entire_binding() });
        self.device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(label), layout, entries: &entries })
    }

    /// Workgroup counts for `threads` invocations of 64-wide workgroups, spread over two
    /// dimensions when one would exceed the device limit. Shaders use `linear_id`.
    pub(crate) fn grid(&self, threads: u32) -> Result<[u32; 3], WgslError> {
        let groups = threads.div_ceil(64).max(1);
        let max = self.limits.max_compute_workgroups_per_dimension;
        if groups <= max {
            return Ok([groups, 1, 1]);
        }
        let y = groups.div_ceil(max);
        if y > max {
            return Err(WgslError::Invalid(format!("dispatch of {threads} invocations exceeds the device grid")));
        }
        Ok([max, y, 1])
    }
}

fn layout_entry(binding: u32, ty: wgpu::BufferBindingType) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer { ty, has_dynamic_offset: false, min_binding_size: None },
        count: None,
    }
}

fn words_bytes(bytes: usize) -> u64 {
    bytes.next_multiple_of(4).max(4) as u64
}

fn native_dot4(instance: &wgpu::Instance) -> bool {
    instance.wgsl_language_features().contains(wgpu::WgslLanguageFeatures::Packed4x8IntegerDotProduct)
}

fn report_of(info: &wgpu::AdapterInfo, dot4: Dot4Mode) -> AdapterReport {
    AdapterReport {
        name: info.name.clone(),
        device_type: format!("{:?}", info.device_type),
        backend: format!("{:?}", info.backend),
        driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
        is_cpu: info.device_type == wgpu::DeviceType::Cpu,
        dot4,
    }
}

/// The shared WGSL helpers (requantisation, byte access).
pub(crate) const COMMON_WGSL: &str = include_str!("../../shaders/common.wgsl");

/// `dot4(a, b)`: indexed by `Dot4Mode as usize`.
const DOT4_PRELUDE: [&str; 2] = [
    "requires packed_4x8_integer_dot_product;\nfn dot4(a: u32, b: u32) -> i32 { return dot4I8Packed(a, b); }",
    "fn dot4(a: u32, b: u32) -> i32 {\n\
     \x20   return (bitcast<i32>(a << 24u) >> 24u) * (bitcast<i32>(b << 24u) >> 24u)\n\
     \x20        + (bitcast<i32>(a << 16u) >> 24u) * (bitcast<i32>(b << 16u) >> 24u)\n\
     \x20        + (bitcast<i32>(a << 8u) >> 24u) * (bitcast<i32>(b << 8u) >> 24u)\n\
     \x20        + (bitcast<i32>(a) >> 24u) * (bitcast<i32>(b) >> 24u);\n}",
];
