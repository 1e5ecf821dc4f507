//! Tracy instrumentation that costs nothing when the `tracy` feature is off.
//!
//! * [`zone!`](crate::zone) opens a named zone until the end of the enclosing scope:
//!   `let _z = scheduler::zone!("backend.run");`
//! * [`plot!`](crate::plot) records a value on a named plot: `scheduler::plot!("power_w", w);`
//! * [`frame_mark`] marks the end of one camera frame (a secondary frame set per camera).
//!
//! With the feature on, nothing is recorded until a `tracy_client::Client` has been
//! started (`start_client`); the helpers never panic when none is running.
//! Without the feature, `zone!` expands to `()`, `plot!` evaluates nothing and
//! `frame_mark` is an empty inline function.

#[cfg(feature = "tracy")]
#[doc(hidden)]
pub use tracy_client as __tracy;

/// Opens a Tracy zone named by a string literal; keep the value alive for the scope.
#[cfg(feature = "tracy")]
#[macro_export]
macro_rules! zone {
    ($name:literal) => {
        $crate::trace::__tracy::Client::running()
            .map(|c| c.span($crate::trace::__tracy::span_location!($name), 0))
    };
}

/// Opens a Tracy zone named by a string literal (no-op: the `tracy` feature is off).
#[cfg(not(feature = "tracy"))]
#[macro_export]
macro_rules! zone {
    ($name:literal) => {
        ()
    };
}

/// Records `value` (converted to `f64`) on the plot named by a string literal.
#[cfg(feature = "tracy")]
#[macro_export]
macro_rules! plot {
    ($name:literal, $value:expr) => {
        if let Some(c) = $crate::trace::__tracy::Client::running() {
            c.plot($crate::trace::__tracy::plot_name!($name), ($value) as f64);
        }
    };
}

/// Records a value on a named plot (no-op: the `tracy` feature is off; `value` is not evaluated).
#[cfg(not(feature = "tracy"))]
#[macro_export]
macro_rules! plot {
    ($name:literal, $value:expr) => {
        // Type-checked (so its variables count as used) but never evaluated.
        if false {
            let _ = $value;
        }
    };
}

/// Starts the Tracy client (a no-op without the `tracy` feature). Call once at start-up.
pub fn start_client() {
    #[cfg(feature = "tracy")]
    {
        let _ = __tracy::Client::start();
    }
}

/// Marks the end of one frame of `camera` (camera indices above 7 share one frame set).
#[inline]
pub fn frame_mark(camera: usize) {
    #[cfg(feature = "tracy")]
    if let Some(c) = __tracy::Client::running() {
        let name = match camera {
            0 => __tracy::frame_name!("camera0"),
            1 => __tracy::frame_name!("camera1"),
            2 => __tracy::frame_name!("camera2"),
            3 => __tracy::frame_name!("camera3"),
            4 => __tracy::frame_name!("camera4"),
            5 => __tracy::frame_name!("camera5"),
            6 => __tracy::frame_name!("camera6"),
            7 => __tracy::frame_name!("camera7"),
            _ => __tracy::frame_name!("camera_other"),
        };
        c.secondary_frame_mark(name);
    }
    #[cfg(not(feature = "tracy"))]
    let _ = camera;
}

/// Marks the end of one pass of the hot loop (Tracy's main frame).
#[inline]
pub fn loop_mark() {
    #[cfg(feature = "tracy")]
    if let Some(c) = __tracy::Client::running() {
        c.frame_mark();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn helpers_run_without_a_client() {
        // With the feature off these are no-ops; with it on and no client started they
        // must not panic either.
        let _z = crate::zone!("test.zone");
        crate::plot!("test.plot", 1.5f32);
        super::frame_mark(3);
        super::frame_mark(99);
        super::loop_mark();
    }

    #[cfg(not(feature = "tracy"))]
    #[test]
    fn zone_is_zero_sized_when_off() {
        let z = crate::zone!("x");
        assert_eq!(std::mem::size_of_val(&z), 0);
        let hits = std::cell::Cell::new(0);
        crate::plot!("x", {
            hits.set(1);
            1.0
        });
        assert_eq!(hits.get(), 0, "plot! must not evaluate its value with the feature off");
    }
}
