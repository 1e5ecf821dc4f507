//! `cpu-ref`: the scalar specification of every op. Clarity over speed; never optimise here.

use crate::ir::QConv;

/// Runs a fused quantised convolution on one NHWC image of `h x w x in_c`, writing
/// `oh x ow x out_c` into `out`.
pub fn conv(op: &QConv, input: &[i8], h: usize, w: usize, out: &mut [i8]) {
    let g = &op.geom;
    assert_eq!(input.len(), h * w * g.in_c, "conv input is not h*w*in_c");
    let (oh, ow) = g.out_hw(h, w);
    assert_eq!(out.len(), oh * ow * g.out_c, "conv output is not oh*ow*out_c");
    let icg = g.in_c / g.groups;
    let ocg = g.out_c / g.groups;
    for oy in 0..oh {
        for ox in 0..ow {
            for oc in 0..g.out_c {
                let group = oc / ocg;
                let mut acc: i32 = op.bias[oc];
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let iy = (oy * g.stride_h + ky) as isize - g.pad[0] as isize;
                        let ix = (ox * g.stride_w + kx) as isize - g.pad[1] as isize;
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                            continue; // padding holds the zero point: (zp - zp) * w == 0
                        }
                        let base = (iy as usize * w + ix as usize) * g.in_c + group * icg;
                        let wbase = ((oc * g.kh + ky) * g.kw + kx) * icg;
                        for ic in 0..icg {
                            let x = i32::from(input[base + ic]) - op.input_zp;
                            acc = acc.wrapping_add(x * i32::from(op.weights[wbase + ic]));
                        }
                    }
                }
                let v = op.requant[oc].apply(acc).saturating_add(op.output_zp);
                out[(oy * ow + ox) * g.out_c + oc] = v.clamp(i32::from(op.act_min), i32::from(op.act_max)) as i8;
            }
        }
    }
}
