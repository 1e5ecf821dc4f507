//! The FP32 NHWC reference interpreter of an imported [`Graph`]: what calibration observes
//! and what `vigil eval MODEL.onnx` runs. Plain loops, written for clarity first; the
//! convolution keeps the output channel innermost so the compiler vectorises it.

use crate::onnx::{FOp, Graph, Shape};

/// One frame of a float tensor, `h x w x c` (NHWC, N = 1).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Shape.
    pub shape: Shape,
    /// Values, channel innermost.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A zero tensor.
    pub fn zeros(shape: Shape) -> Tensor {
        Tensor { shape, data: vec![0.0; shape.len()] }
    }

    /// The network input from a packed RGB8 frame of exactly the input size: `v / 255`.
    pub fn from_rgb8(rgb: &[u8], h: usize, w: usize) -> Tensor {
        assert_eq!(rgb.len(), h * w * 3, "frame is not h*w*3 bytes");
        Tensor { shape: Shape { c: 3, h, w }, data: rgb.iter().map(|&v| f32::from(v) / 255.0).collect() }
    }

    /// Value at `(y, x, c)`.
    pub fn at(&self, y: usize, x: usize, c: usize) -> f32 {
        self.data[(y * self.shape.w + x) * self.shape.c + c]
    }
}

/// Weights re-laid out for the interpreter: `[kh][kw][in_c / groups][out_c]` (HWIO), so the
/// innermost loop runs over contiguous output channels.
fn hwio(weight: &[f32], oc: usize, kh: usize, kw: usize, icg: usize) -> Vec<f32> {
    let mut out = vec![0.0; weight.len()];
    for o in 0..oc {
        for y in 0..kh {
            for x in 0..kw {
                for i in 0..icg {
                    out[((y * kw + x) * icg + i) * oc + o] = weight[((o * kh + y) * kw + x) * icg + i];
                }
            }
        }
    }
    out
}

/// Prepared interpreter: the graph plus per-conv HWIO weights.
#[derive(Debug)]
pub struct Interpreter<'g> {
    graph: &'g Graph,
    hwio: Vec<Option<Vec<f32>>>,
}

impl<'g> Interpreter<'g> {
    /// Prepares `graph` (re-lays out the weights once).
    pub fn new(graph: &'g Graph) -> Interpreter<'g> {
        let hwio = graph
            .nodes
            .iter()
            .map(|n| match &n.op {
                FOp::Conv { geom, weight, .. } if geom.groups == 1 => Some(hwio(weight, geom.out_c, geom.kh, geom.kw, geom.in_c)),
                _ => None,
            })
            .collect();
        Interpreter { graph, hwio }
    }

    /// The graph.
    pub fn graph(&self) -> &'g Graph {
        self.graph
    }

    /// Runs every node; returns all values (index = `ValueId`).
    pub fn run_all(&self, input: Tensor) -> Vec<Tensor> {
        assert_eq!(input.shape, self.graph.values[self.graph.input].shape, "input shape does not match the graph");
        let mut vals: Vec<Option<Tensor>> = vec![None; self.graph.values.len()];
        vals[self.graph.input] = Some(input);
        for (ni, node) in self.graph.nodes.iter().enumerate() {
            let shape = self.graph.values[node.output].shape;
            let get = |i: usize| vals[node.inputs[i]].as_ref().expect("graph values are produced in order");
            let out = match &node.op {
                FOp::Conv { geom, weight, bias } => {
                    let x = get(0);
                    match &self.hwio[ni] {
                        Some(w) => conv_dense(x, w, bias, geom, shape),
                        None => conv_grouped(x, weight, bias, geom, shape),
                    }
                }
                FOp::BatchNorm { scale, shift } => {
                    let x = get(0);
                    let c = shape.c;
                    Tensor { shape, data: x.data.iter().enumerate().map(|(i, v)| v * scale[i % c] + shift[i % c]).collect() }
                }
                FOp::Relu => map(get(0), |v| v.max(0.0)),
                FOp::Clip { min, max } => map(get(0), |v| v.clamp(*min, *max)),
                FOp::LeakyRelu { alpha } => map(get(0), |v| if v >= 0.0 { v } else { alpha * v }),
                FOp::Sigmoid => map(get(0), |v| 1.0 / (1.0 + (-v).exp())),
                FOp::Identity => get(0).clone(),
                FOp::Add => {
                    let (a, b) = (get(0), get(1));
                    Tensor { shape, data: a.data.iter().zip(&b.data).map(|(x, y)| x + y).collect() }
                }
                FOp::Concat => {
                    let mut t = Tensor::zeros(shape);
                    let mut c0 = 0;
                    for i in 0..node.inputs.len() {
                        let x = get(i);
                        let xc = x.shape.c;
                        for p in 0..shape.h * shape.w {
                            t.data[p * shape.c + c0..p * shape.c + c0 + xc].copy_from_slice(&x.data[p * xc..(p + 1) * xc]);
                        }
                        c0 += xc;
                    }
                    t
                }
                FOp::MaxPool { k, stride, pad } => {
                    let x = get(0);
                    let mut t = Tensor::zeros(shape);
                    for oy in 0..shape.h {
                        for ox in 0..shape.w {
                            for c in 0..shape.c {
                                let mut m = f32::NEG_INFINITY;
                                for ky in 0..k[0] {
                                    for kx in 0..k[1] {
                                        let iy = (oy * stride[0] + ky) as isize - pad[0] as isize;
                                        let ix = (ox * stride[1] + kx) as isize - pad[1] as isize;
                                        if iy >= 0 && ix >= 0 && (iy as usize) < x.shape.h && (ix as usize) < x.shape.w {
                                            m = m.max(x.at(iy as usize, ix as usize, c));
                                        }
                                    }
                                }
                                t.data[(oy * shape.w + ox) * shape.c + c] = m;
                            }
                        }
                    }
                    t
                }
                FOp::ResizeNearest { fh, fw } => {
                    let x = get(0);
                    let mut t = Tensor::zeros(shape);
                    let c = shape.c;
                    for oy in 0..shape.h {
                        for ox in 0..shape.w {
                            let src = ((oy / fh) * x.shape.w + ox / fw) * c;
                            t.data[(oy * shape.w + ox) * c..(oy * shape.w + ox + 1) * c].copy_from_slice(&x.data[src..src + c]);
                        }
                    }
                    t
                }
            };
            vals[node.output] = Some(out);
        }
        vals.into_iter().map(|v| v.unwrap_or_else(|| Tensor::zeros(Shape { c: 0, h: 0, w: 0 }))).collect()
    }

    /// Runs the graph and returns its outputs in ONNX order.
    pub fn run(&self, input: Tensor) -> Vec<Tensor> {
        let mut all = self.run_all(input);
        self.graph.outputs.iter().map(|&o| std::mem::replace(&mut all[o], Tensor::zeros(Shape { c: 0, h: 0, w: 0 }))).collect()
    }
}

fn map(x: &Tensor, f: impl Fn(f32) -> f32) -> Tensor {
    Tensor { shape: x.shape, data: x.data.iter().map(|&v| f(v)).collect() }
}

fn conv_dense(x: &Tensor, w_hwio: &[f32], bias: &[f32], g: &crate::ir::ConvGeom, shape: Shape) -> Tensor {
    let mut t = Tensor::zeros(shape);
    let oc = g.out_c;
    let ic = g.in_c;
    let mut acc = vec![0f32; oc];
    for oy in 0..shape.h {
        for ox in 0..shape.w {
            acc.copy_from_slice(bias);
            for ky in 0..g.kh {
                let iy = (oy * g.stride_h + ky) as isize - g.pad[0] as isize;
                if iy < 0 || iy as usize >= x.shape.h {
                    continue;
                }
                for kx in 0..g.kw {
                    let ix = (ox * g.stride_w + kx) as isize - g.pad[1] as isize;
                    if ix < 0 || ix as usize >= x.shape.w {
                        continue;
                    }
                    let xb = (iy as usize * x.shape.w + ix as usize) * ic;
                    let wb = (ky * g.kw + kx) * ic * oc;
                    for i in 0..ic {
                        let xv = x.data[xb + i];
                        let wrow = &w_hwio[wb + i * oc..wb + (i + 1) * oc];
                        for (a, &wv) in acc.iter_mut().zip(wrow) {
                            *a += xv * wv;
                        }
                    }
                }
            }
            t.data[(oy * shape.w + ox) * oc..(oy * shape.w + ox + 1) * oc].copy_from_slice(&acc);
        }
    }
    t
}

fn conv_grouped(x: &Tensor, w: &[f32], bias: &[f32], g: &crate::ir::ConvGeom, shape: Shape) -> Tensor {
    let mut t = Tensor::zeros(shape);
    let icg = g.in_c / g.groups;
    let ocg = g.out_c / g.groups;
    for oy in 0..shape.h {
        for ox in 0..shape.w {
            let ob = (oy * shape.w + ox) * g.out_c;
            t.data[ob..ob + g.out_c].copy_from_slice(bias);
            for ky in 0..g.kh {
                let iy = (oy * g.stride_h + ky) as isize - g.pad[0] as isize;
                if iy < 0 || iy as usize >= x.shape.h {
                    continue;
                }
                for kx in 0..g.kw {
                    let ix = (ox * g.stride_w + kx) as isize - g.pad[1] as isize;
                    if ix < 0 || ix as usize >= x.shape.w {
                        continue;
                    }
                    let xb = (iy as usize * x.shape.w + ix as usize) * g.in_c;
                    for oc in 0..g.out_c {
                        let grp = oc / ocg;
                        let wb = ((oc * g.kh + ky) * g.kw + kx) * icg;
                        let mut s = 0f32;
                        for i in 0..icg {
                            s += x.data[xb + grp * icg + i] * w[wb + i];
                        }
                        t.data[ob + oc] += s;
                    }
                }
            }
        }
    }
    t
}
