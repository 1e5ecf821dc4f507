//! The synthetic world: determinism, ground-truth consistency, occlusion and truncation.

use nalgebra::Point3;
use rig::{FrameTruth, ObjectClass, PlacedObject, Rig, SyntheticRig, CAMERA_COUNT};

fn buffers() -> Vec<Vec<u8>> {
    vec![Vec::new(); CAMERA_COUNT]
}

fn run(seed: u64, threads: usize, frames: usize) -> (Vec<Vec<Vec<u8>>>, Vec<FrameTruth>) {
    let mut world = SyntheticRig::new(Rig::builtin(), seed, 36.0).with_threads(threads).unwrap();
    let mut images = Vec::new();
    let mut truths = Vec::new();
    for _ in 0..frames {
        let mut bufs = buffers();
        truths.push(world.next_frame(&mut bufs));
        images.push(bufs);
    }
    (images, truths)
}

#[test]
fn same_seed_gives_identical_bytes_and_truth_whatever_the_thread_count() {
    let (img_a, truth_a) = run(7, 1, 3);
    let (img_b, truth_b) = run(7, 3, 3);
    for (f, (a, b)) in img_a.iter().zip(&img_b).enumerate() {
        for (cam, (x, y)) in a.iter().zip(b).enumerate() {
            assert_eq!(x.len(), 640 * 384 * 3);
            assert!(x == y, "frame {f} camera {cam} differs");
        }
    }
    assert_eq!(serde_json::to_string(&truth_a).unwrap(), serde_json::to_string(&truth_b).unwrap());
    // Frames differ from each other (the world moves) ...
    assert_ne!(img_a[0][0], img_a[2][0]);
    assert!(truth_a[2].ego_pose[0] > truth_a[0].ego_pose[0]);
    assert_eq!(truth_a[1].timestamp_ns, 27_777_778);
    // ... and another seed gives another world.
    let (img_c, truth_c) = run(8, 2, 1);
    for cam in 0..CAMERA_COUNT {
        assert_ne!(img_a[0][cam], img_c[0][cam], "camera {cam}");
    }
    assert_ne!(serde_json::to_string(&truth_a[0]).unwrap(), serde_json::to_string(&truth_c[0]).unwrap());
}

#[test]
fn truth_is_consistent_with_the_projection() {
    let rig = Rig::builtin();
    let mut world = SyntheticRig::new(rig.clone(), 11, 10.0);
    let mut bufs = buffers();
    let mut checked_centres = 0;
    let mut classes = [0usize; ObjectClass::COUNT];
    let (mut near, mut far) = (false, false);
    for _ in 0..4 {
        let truth = world.next_frame(&mut bufs);
        for o in &truth.objects {
            let d = (o.position[0].powi(2) + o.position[1].powi(2) + o.position[2].powi(2)).sqrt();
            assert!((d - o.distance).abs() < 1e-9);
            assert!(o.size.iter().all(|s| *s > 0.1 && *s < 13.0), "{o:?}");
            assert!(o.yaw > -std::f64::consts::PI - 1e-12 && o.yaw <= std::f64::consts::PI + 1e-12);
            if !o.boxes.is_empty() {
                classes[o.class as usize] += 1;
                near |= o.distance < 10.0;
                far |= o.distance > 60.0;
            }
            for b in &o.boxes {
                let cam = &rig.cameras()[b.camera as usize];
                let (w, h) = (cam.width as f32, cam.height as f32);
                let [u0, v0, u1, v1] = b.bbox;
                assert!(0.0 <= u0 && u0 < u1 && u1 <= w && 0.0 <= v0 && v0 < v1 && v1 <= h, "{b:?}");
                let [a0, b0, a1, b1] = b.visible_bbox;
                assert!(u0 <= a0 && b0 >= v0 && a1 <= u1 && b1 <= v1, "visible box outside amodal box: {b:?}");
                assert!(b.visible_pixels as f32 <= (a1 - a0) * (b1 - b0));
                assert!((0.0..=1.0).contains(&b.visible_fraction) && b.visible_pixels > 0);
                assert!((b.visible_fraction - (1.0 - b.occluded_fraction) * (1.0 - b.truncated_fraction)).abs() < 1e-6);
                let centre = Point3::from(o.position);
                let local = cam.camera_to_vehicle.inverse_transform_point(&centre);
                assert!((f64::from(b.depth) - local.z).abs() < 1e-3);
                // The centre of a clearly visible object projects inside its box.
                if let Some(px) = cam.project(&centre)
                    && cam.contains(&px)
                    && local.z > 1.0
                    && b.visible_pixels > 50
                {
                    let (x, y) = (px.x as f32, px.y as f32);
                    assert!(x >= u0 - 1.0 && x <= u1 + 1.0 && y >= v0 - 1.0 && y <= v1 + 1.0, "{}: {px:?} outside {b:?}", cam.name);
                    checked_centres += 1;
                }
            }
        }
    }
    assert!(checked_centres > 20, "only {checked_centres} centres checked");
    assert!(classes[ObjectClass::Car as usize] > 0 && classes[ObjectClass::Pedestrian as usize] > 0, "{classes:?}");
    assert!(near && far, "scale range: near {near} far {far}");
}

fn placed(class: ObjectClass, x: f64, y: f64) -> PlacedObject {
    PlacedObject { class, ground: [x, y], yaw: 0.0 }
}

#[test]
fn occluded_objects_have_lower_visible_fraction() {
    let rig = Rig::builtin();
    let front_main = rig.camera("front_main").unwrap().0 as u8;
    let mut world = SyntheticRig::new(rig, 3, 36.0);
    let mut bufs = buffers();
    // A car 15 m ahead hides most of a pedestrian 25 m ahead on the same line.
    let truth = world.render_placed(&[placed(ObjectClass::Car, 15.0, 0.0), placed(ObjectClass::Pedestrian, 25.0, 0.3)], &mut bufs);
    let boxes = |t: &FrameTruth, id: u32| t.objects.iter().find(|o| o.id == id).unwrap().boxes.clone();
    let car = boxes(&truth, 1).into_iter().find(|b| b.camera == front_main).unwrap();
    let ped = boxes(&truth, 2).into_iter().find(|b| b.camera == front_main).unwrap();
    assert!(car.occluded_fraction < 0.01 && car.visible_fraction > 0.95, "{car:?}");
    assert!(ped.occluded_fraction > 0.3, "{ped:?}");
    assert!(ped.visible_fraction < car.visible_fraction);
    // The same pedestrian alone is fully visible, with the same amodal box.
    let alone = world.render_placed(&[placed(ObjectClass::Pedestrian, 25.0, 0.3)], &mut bufs);
    let ped_alone = boxes(&alone, 1).into_iter().find(|b| b.camera == front_main).unwrap();
    assert!(ped_alone.visible_fraction > 0.95, "{ped_alone:?}");
    assert_eq!(ped_alone.bbox, ped.bbox);
    assert!(ped_alone.visible_pixels > ped.visible_pixels);
}

#[test]
fn objects_cut_by_the_border_are_truncated() {
    let rig = Rig::builtin();
    let (front_main, cam) = rig.camera("front_main").unwrap();
    let front_main = front_main as u8;
    // Place a truck so that its centre sits at the right image edge of front_main.
    let depth = 20.0;
    let edge = cam.unproject_depth(&nalgebra::Point2::new(f64::from(cam.width), cam.cy), depth);
    let mut world = SyntheticRig::new(rig.clone(), 5, 36.0);
    let mut bufs = buffers();
    let truth = world.render_placed(&[placed(ObjectClass::Truck, edge.x, edge.y)], &mut bufs);
    let b = truth.objects[0].boxes.iter().find(|b| b.camera == front_main).unwrap();
    assert_eq!(b.bbox[2], 640.0, "{b:?}");
    assert!(b.truncated_fraction > 0.2 && b.truncated_fraction < 0.9, "{b:?}");
    assert!(b.occluded_fraction < 0.01);
    // The pixels of the box really show something else than the empty road.
    let empty = world.render_placed(&[], &mut buffers());
    assert!(empty.objects.is_empty());
    let mut bufs_empty = buffers();
    world.render_placed(&[], &mut bufs_empty);
    let img = &bufs[front_main as usize];
    let base = &bufs_empty[front_main as usize];
    let mut changed = 0;
    for v in b.visible_bbox[1] as usize..b.visible_bbox[3] as usize {
        for u in b.visible_bbox[0] as usize..b.visible_bbox[2] as usize {
            let i = (v * 640 + u) * 3;
            if img[i..i + 3] != base[i..i + 3] {
                changed += 1;
            }
        }
    }
    assert!(changed as u32 >= b.visible_pixels * 9 / 10, "{changed} changed of {}", b.visible_pixels);
}

#[test]
fn every_camera_sees_the_world() {
    let rig = Rig::builtin();
    let mut world = SyntheticRig::new(rig.clone(), 21, 36.0);
    let mut bufs = buffers();
    let mut seen = [0usize; CAMERA_COUNT];
    for _ in 0..2 {
        let truth = world.next_frame(&mut bufs);
        for o in &truth.objects {
            for b in &o.boxes {
                seen[b.camera as usize] += 1;
            }
        }
    }
    for (cam, img) in rig.cameras().iter().zip(&bufs) {
        // Not a flat image: the renderer produced structure in every camera.
        let mean = img.iter().map(|&x| f64::from(x)).sum::<f64>() / img.len() as f64;
        let var = img.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / img.len() as f64;
        assert!(var.sqrt() > 10.0, "{}: std {}", cam.name, var.sqrt());
    }
    let total: usize = seen.iter().sum();
    assert!(total > 10, "{seen:?}");
}
