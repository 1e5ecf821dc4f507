//! A prepared sequence of compute dispatches over device-resident tensors: the unit
//! every op builds into and the thing a frame runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use super::ctx::{WgslContext, WgslError};

/// One compute dispatch, fully bound at prepare time.
pub(crate) struct Dispatch {
    pub(crate) label: String,
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) bind: wgpu::BindGroup,
    pub(crate) grid: [u32; 3],
}

/// A device tensor: a storage buffer and its length in bytes.
#[derive(Clone)]
pub(crate) struct DevTensor {
    pub(crate) buf: wgpu::Buffer,
    pub(crate) bytes: usize,
}

/// Inputs uploaded, dispatches recorded in order, outputs read back: everything allocated
/// by [`Program::new`]; [`Program::run`] only writes, submits, waits and copies.
pub struct Program {
    ctx: Arc<WgslContext>,
    inputs: Vec<DevTensor>,
    outputs: Vec<(DevTensor, wgpu::Buffer)>,
    dispatches: Vec<Dispatch>,
    clears: Vec<(wgpu::Buffer, u64)>,
    map_state: Arc<AtomicU8>,
}

const MAP_PENDING: u8 = 0;
const MAP_OK: u8 = 1;
const MAP_FAILED: u8 = 2;

impl Program {
    pub(crate) fn new(
        ctx: Arc<WgslContext>,
        inputs: Vec<DevTensor>,
        outputs: Vec<DevTensor>,
        dispatches: Vec<Dispatch>,
    ) -> Program {
        let outputs = outputs
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let rb = ctx.readback(&format!("readback{i}"), t.bytes);
                (t, rb)
            })
            .collect();
        Program { ctx, inputs, outputs, dispatches, clears: Vec::new(), map_state: Arc::new(AtomicU8::new(MAP_PENDING)) }
    }

    /// Zeroes the first `bytes` of `buf` at the start of every run (atomic counters).
    pub(crate) fn clear_before_run(mut self, buf: wgpu::Buffer, bytes: u64) -> Program {
        self.clears.push((buf, bytes));
        self
    }

    /// The dispatches' labels, in order (`conv#3`, `peaks`, ...).
    pub fn dispatch_labels(&self) -> Vec<&str> {
        self.dispatches.iter().map(|d| d.label.as_str()).collect()
    }

    /// Number of dispatches per run.
    pub fn dispatch_count(&self) -> usize {
        self.dispatches.len()
    }

    /// Byte sizes of the inputs, in order.
    pub fn input_sizes(&self) -> Vec<usize> {
        self.inputs.iter().map(|t| t.bytes).collect()
    }

    /// Byte sizes of the outputs, in order.
    pub fn output_sizes(&self) -> Vec<usize> {
        self.outputs.iter().map(|(t, _)| t.bytes).collect()
    }

    /// Uploads `inputs`, runs every dispatch in one submission, reads `outputs` back.
    /// Sizes must match [`Self::input_sizes`] / [`Self::output_sizes`].
    pub fn run(&self, inputs: &[&[u8]], outputs: &mut [&mut [u8]]) -> Result<(), WgslError> {
        if inputs.len() != self.inputs.len() || outputs.len() != self.outputs.len() {
            return Err(WgslError::Invalid(format!(
                "program takes {} inputs and {} outputs, got {} and {}",
                self.inputs.len(),
                self.outputs.len(),
                inputs.len(),
                outputs.len()
            )));
        }
        for (i, (data, t)) in inputs.iter().zip(&self.inputs).enumerate() {
            if data.len() != t.bytes {
                return Err(WgslError::Invalid(format!("input {i}: {} bytes, expected {}", data.len(), t.bytes)));
            }
            self.ctx.write_padded(&t.buf, data);
        }
        for (i, (data, (t, _))) in outputs.iter().zip(&self.outputs).enumerate() {
            if data.len() != t.bytes {
                return Err(WgslError::Invalid(format!("output {i}: {} bytes, expected {}", data.len(), t.bytes)));
            }
        }
        let mut enc = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("frame") });
        for (buf, bytes) in &self.clears {
            enc.clear_buffer(buf, 0, Some(*bytes));
        }
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("frame"), timestamp_writes: None });
            for d in &self.dispatches {
                pass.set_pipeline(&d.pipeline);
                pass.set_bind_group(0, &d.bind, &[]);
                pass.dispatch_workgroups(d.grid[0], d.grid[1], d.grid[2]);
            }
        }
        for (t, rb) in &self.outputs {
            enc.copy_buffer_to_buffer(&t.buf, 0, rb, 0, rb.size());
        }
        self.ctx.queue.submit([enc.finish()]);
        for ((_, rb), out) in self.outputs.iter().zip(outputs.iter_mut()) {
            self.map_state.store(MAP_PENDING, Ordering::SeqCst);
            let state = Arc::clone(&self.map_state);
            rb.slice(..).map_async(wgpu::MapMode::Read, move |r| {
                state.store(if r.is_ok() { MAP_OK } else { MAP_FAILED }, Ordering::SeqCst);
            });
            self.ctx.wait("frame")?;
            // The callback runs on whichever thread polls the device after the copy finishes.
            // When another thread shares the device (tests run in parallel on one adapter), our
            // wait can return while that thread is still running the callbacks it collected:
            // poll again until ours has run, bounded by the frame timeout.
            let deadline = std::time::Instant::now() + self.ctx.timeout();
            while self.map_state.load(Ordering::SeqCst) == MAP_PENDING {
                if std::time::Instant::now() >= deadline {
                    return Err(WgslError::Timeout(self.ctx.timeout()));
                }
                std::thread::yield_now();
                self.ctx.wait("frame")?;
            }
            if self.map_state.load(Ordering::SeqCst) != MAP_OK {
                self.ctx.check("reading back the output")?;
                return Err(WgslError::Device { what: "reading back the output".into(), message: "map failed".into() });
            }
            {
                let view = rb.slice(..).get_mapped_range().map_err(|e| WgslError::Device {
                    what: "reading back the output".into(),
                    message: e.to_string(),
                })?;
                out.copy_from_slice(&view[..out.len()]);
            }
            rb.unmap();
        }
        Ok(())
    }
}
