//! `--rt`: real-time set-up of the hot thread (memory locked, SCHED_FIFO, pinned CPU).

use anyhow::Context;

/// Locks current and future memory, raises the calling thread to SCHED_FIFO and pins it to
/// the last CPU. Each step says clearly what failed and which privilege it needs.
pub fn enter() -> anyhow::Result<()> {
    nix::sys::mman::mlockall(nix::sys::mman::MlockAllFlags::MCL_CURRENT | nix::sys::mman::MlockAllFlags::MCL_FUTURE)
        .context("mlockall failed: needs CAP_IPC_LOCK or a large enough RLIMIT_MEMLOCK (ulimit -l)")?;
    let prio = thread_priority::ThreadPriority::Crossplatform(
        thread_priority::ThreadPriorityValue::try_from(80u8).map_err(|e| anyhow::anyhow!("priority 80: {e}"))?,
    );
    thread_priority::set_thread_priority_and_policy(
        thread_priority::thread_native_id(),
        prio,
        thread_priority::ThreadSchedulePolicy::Realtime(thread_priority::RealtimeThreadSchedulePolicy::Fifo),
    )
    .map_err(|e| anyhow::anyhow!("SCHED_FIFO priority 80 refused ({e:?}): needs CAP_SYS_NICE or an rtprio limit (ulimit -r)"))?;
    if let Some(core) = core_affinity::get_core_ids().and_then(|c| c.last().copied()) {
        if !core_affinity::set_for_current(core) {
            anyhow::bail!("pinning the hot thread to CPU {} failed", core.id);
        }
        tracing::info!("--rt: memory locked, hot thread SCHED_FIFO 80 on CPU {}", core.id);
    }
    Ok(())
}
