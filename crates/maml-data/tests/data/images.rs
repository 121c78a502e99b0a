//! Image classes (Omniglot layout, folder or zip), the one-shot runs, the N-way K-shot
//! sampler, and query accuracy, against values known by construction.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::prelude::*;
use burn_ndarray::NdArray;
use maml_core::data::layers::LayerSpec;
use maml_core::data::layers::LayeredSpec;
use maml_core::model::layered::Layered;
use maml_core::train::guard::step_rng;
use maml_core::{AdaptConfig, Loss, Sets, TaskFamily};
use maml_data::few_shot::FewShotFamily;
use maml_data::images::ImageClasses;
use maml_data::images::load_runs;
use maml_data::images::{SIDE, decode_png, rotate, translate};
use maml_data::model_trainer::eval_accuracy;
use maml_data::stored::StoredModel;

type B = NdArray<f32>;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data-omniglot")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("maml-images-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A 105x105 PNG: black (ink) where `ink(row, col)`, white elsewhere.
fn png(ink: impl Fn(u32, u32) -> bool) -> Vec<u8> {
    let image = image::GrayImage::from_fn(105, 105, |col, row| {
        image::Luma([if ink(row, col) { 0 } else { 255 }])
    });
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

#[test]
fn images_are_resized_with_ink_one_and_rotated_counter_clockwise() {
    let white = decode_png(&png(|_, _| false), "white").unwrap();
    let black = decode_png(&png(|_, _| true), "black").unwrap();
    assert_eq!(white.len(), SIDE * SIDE);
    assert!(white.iter().all(|&v| v.abs() < 1e-6), "background is 0");
    assert!(black.iter().all(|&v| (v - 1.0).abs() < 1e-6), "ink is 1");
    // Ink on the left half: after resizing, the left columns are ink, the right not.
    let left = decode_png(&png(|_, col| col < 52), "left").unwrap();
    let at = |im: &[f64], row: usize, col: usize| im[row * SIDE + col];
    assert!(at(&left, 14, 2) > 0.99 && at(&left, 14, 25) < 0.01);
    // 90 degrees counter-clockwise: the left half goes to the bottom.
    let turned = rotate(&left, 1);
    assert!(at(&turned, 25, 14) > 0.99 && at(&turned, 2, 14) < 0.01);
    // 180 degrees: the right half; four quarters: the image itself.
    let half = rotate(&left, 2);
    assert!(at(&half, 14, 25) > 0.99 && at(&half, 14, 2) < 0.01);
    assert_eq!(rotate(&left, 4), left);
}

#[test]
fn a_folder_and_a_zip_of_it_give_the_same_classes() {
    let folder = ImageClasses::load(&data().join("images"), &[], false).unwrap();
    let zip = ImageClasses::load(&data().join("images.zip"), &[], false).unwrap();
    assert_eq!(folder, zip);
    let names: Vec<&str> = folder.classes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Greek/character01",
            "Greek/character02",
            "Greek/character03",
            "Latin/character01",
            "Latin/character02",
            "Latin/character03"
        ]
    );
    assert_eq!(folder.images(), 30);
    // Handwriting is mostly background, with some ink.
    let ink: f64 = folder.classes[0].images[0].iter().sum::<f64>() / (SIDE * SIDE) as f64;
    assert!(ink > 0.02 && ink < 0.5, "ink share {ink}");

    let rotated = ImageClasses::load(&data().join("images"), &["Latin".into()], true).unwrap();
    assert_eq!(rotated.classes.len(), 12);
    assert_eq!(rotated.classes[1].name, "Latin/character01@90");
    assert_eq!(
        rotated.classes[1].images[0],
        rotate(&folder.classes[3].images[0], 1)
    );
}

#[test]
fn bad_data_is_an_error_naming_the_file_or_class() {
    let dir = scratch("bad");
    let class = dir.join("Alpha/character01");
    std::fs::create_dir_all(&class).unwrap();
    std::fs::write(class.join("a.png"), png(|_, _| false)).unwrap();
    std::fs::write(class.join("b.png"), b"not a png").unwrap();
    let err = ImageClasses::load(&dir, &[], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("character01/b.png"), "{err}");

    std::fs::write(class.join("b.png"), png(|_, _| true)).unwrap();
    std::fs::create_dir_all(dir.join("Alpha/character02")).unwrap();
    let err = ImageClasses::load(&dir, &[], false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Alpha/character02") && err.contains("empty"),
        "{err}"
    );

    std::fs::remove_dir(dir.join("Alpha/character02")).unwrap();
    let classes = Arc::new(ImageClasses::load(&dir, &[], false).unwrap());
    let err = FewShotFamily::new(classes.clone(), 1, 2, 1)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Alpha/character01") && err.contains("2 images"),
        "{err}"
    );
    let err = FewShotFamily::new(classes, 2, 1, 1)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("2 classes per task") && err.contains("has 1"),
        "{err}"
    );

    let err = ImageClasses::load(&dir, &["Beta".into()], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"Beta\"") && err.contains("Alpha"), "{err}");
    let err = ImageClasses::load(&dir.join("missing"), &[], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn n_way_k_shot_tasks_are_reproducible_with_distinct_images_per_class() {
    let classes = Arc::new(ImageClasses::load(&data().join("images"), &[], true).unwrap());
    let family = FewShotFamily::new(classes.clone(), 5, 2, 3).unwrap();
    assert_eq!((family.d_in(), family.d_out()), (784, 5));
    assert_eq!(family.image_shape(), Some([1, 28, 28]));
    let tasks = family.sample(20, &mut step_rng(7, 3));
    assert_eq!(tasks, family.sample(20, &mut step_rng(7, 3)));
    assert_ne!(tasks, family.sample(20, &mut step_rng(7, 4)));
    let find = |image: &Vec<f64>| {
        classes
            .classes
            .iter()
            .enumerate()
            .find_map(|(c, class)| class.images.iter().position(|i| i == image).map(|i| (c, i)))
            .expect("every drawn image is one of the data's")
    };
    let mut first_class_of_label0 = std::collections::BTreeSet::new();
    for task in &tasks {
        assert_eq!((task.support.len(), task.query.len()), (10, 15));
        let mut class_of_label = [None; 5];
        let mut seen = std::collections::BTreeSet::new();
        for set in [&task.support, &task.query] {
            for (x, y) in set.x.iter().zip(set.y.as_ref().unwrap()) {
                let label = y.iter().position(|&v| v == 1.0).unwrap();
                assert_eq!(y.iter().sum::<f64>(), 1.0, "one-hot targets");
                let (class, image) = find(x);
                assert!(
                    seen.insert((class, image)),
                    "an image drawn twice in a task"
                );
                match class_of_label[label] {
                    None => class_of_label[label] = Some(class),
                    Some(c) => assert_eq!(c, class, "a label holds one class"),
                }
            }
        }
        let distinct: std::collections::BTreeSet<_> = class_of_label.iter().collect();
        assert_eq!(distinct.len(), 5, "five distinct classes");
        first_class_of_label0.insert(class_of_label[0]);
    }
    assert!(
        first_class_of_label0.len() > 3,
        "labels are shuffled across tasks"
    );
}

#[test]
fn translate_moves_ink_and_blanks_the_uncovered_border() {
    let mut image = vec![0.0; SIDE * SIDE];
    image[5 * SIDE + 7] = 1.0;
    image[27 * SIDE + 27] = 0.5;
    let moved = translate(&image, 2, -3);
    let ink: Vec<usize> = (0..SIDE * SIDE).filter(|&i| moved[i] != 0.0).collect();
    // (5, 7) goes to (7, 4); the corner pixel leaves the image.
    assert_eq!(ink, [7 * SIDE + 4]);
    assert_eq!(translate(&image, 0, 0), image);
}

/// With a shift, every drawn image is one of the data's moved by at most `shift` pixels
/// each way, and not all of them stay in place; the same seed draws the same moves.
#[test]
fn shifted_tasks_hold_moved_copies_of_the_data() {
    let classes = Arc::new(ImageClasses::load(&data().join("images"), &[], false).unwrap());
    let err = FewShotFamily::new(classes.clone(), 3, 1, 2)
        .unwrap()
        .with_shift(28)
        .expect_err("a shift of the whole side")
        .to_string();
    assert!(err.contains("shift = 28"), "{err}");
    let family = FewShotFamily::new(classes.clone(), 3, 1, 2)
        .unwrap()
        .with_shift(2)
        .unwrap();
    let tasks = family.sample(8, &mut step_rng(5, 0));
    assert_eq!(tasks, family.sample(8, &mut step_rng(5, 0)));
    let moves: Vec<(i64, i64)> = tasks
        .iter()
        .flat_map(|t| t.support.x.iter().chain(&t.query.x))
        .map(|x| {
            classes
                .classes
                .iter()
                .flat_map(|c| &c.images)
                .find_map(|image| {
                    (-2..=2)
                        .flat_map(|dy| (-2..=2).map(move |dx| (dy, dx)))
                        .find(|&(dy, dx)| translate(image, dy, dx) == *x)
                })
                .expect("a drawn image is a data image moved by at most 2 pixels")
        })
        .collect();
    assert_eq!(moves.len(), 8 * 9);
    assert!(
        moves.iter().filter(|&&m| m != (0, 0)).count() > 30,
        "{moves:?}"
    );
}

#[test]
fn one_shot_runs_pair_test_items_with_training_images() {
    let runs = load_runs(&data().join("runs")).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].name, "run01");
    let task = &runs[0].task;
    assert_eq!((task.support.len(), task.query.len()), (3, 3));
    let labels = |y: &Option<Vec<Vec<f64>>>| -> Vec<usize> {
        y.as_ref()
            .unwrap()
            .iter()
            .map(|r| r.iter().position(|&v| v == 1.0).unwrap())
            .collect()
    };
    assert_eq!(labels(&task.support.y), [0, 1, 2]);
    assert_eq!(labels(&task.query.y), [0, 1, 2]);
    let err = load_runs(&data().join("images")).unwrap_err().to_string();
    assert!(err.contains("class_labels.txt"), "{err}");
}

/// A linear layer whose weight is the identity predicts its input: the accuracy of each
/// task is the share of rows whose largest entry is at the target's class.
#[test]
fn accuracy_is_the_share_of_rows_classified_right() {
    let device = Default::default();
    let x = Tensor::<B, 3>::from_floats(
        [[
            [0.9, 0.1, 0.0],
            [0.2, 0.7, 0.1],
            [0.3, 0.3, 0.4],
            [0.5, 0.4, 0.1],
        ]],
        &device,
    );
    let y = Tensor::<B, 3>::from_floats(
        [[
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
        ]],
        &device,
    );
    let sets = Sets::from_tensors(x.clone(), Some(y)).with_loss(Loss::CrossEntropy);
    let accuracy = sets.task_accuracies(x).into_data().to_vec::<f32>().unwrap();
    assert_eq!(accuracy, [0.5]);

    let eye: Vec<Vec<f64>> = (0..3)
        .map(|i| (0..3).map(|j| f64::from(u8::from(i == j))).collect())
        .collect();
    let array = |rows: &Vec<Vec<f64>>| {
        maml_core::data::layers::Array::new(vec![rows.len(), rows[0].len()], rows.concat())
    };
    let model = StoredModel::Layered(LayeredSpec {
        input: vec![3],
        layers: vec![LayerSpec::Linear {
            weight: array(&eye),
            bias: maml_core::data::layers::Array::zeros(&[3]),
        }],
    });
    let one_hot = |c: usize| (0..3).map(|j| f64::from(u8::from(j == c))).collect();
    let set = |x: Vec<Vec<f64>>, classes: &[usize]| maml_core::SetData {
        x,
        y: Some(classes.iter().map(|&c| one_hot(c)).collect()),
    };
    let tasks = vec![
        maml_core::TaskData {
            support: set(vec![vec![1.0, 0.0, 0.0]], &[0]),
            query: set(
                vec![
                    vec![0.0, 2.0, 0.0],
                    vec![0.0, 0.0, 1.0],
                    vec![3.0, 0.0, 0.0],
                ],
                &[1, 2, 1],
            ),
        },
        maml_core::TaskData {
            support: set(vec![vec![0.0, 1.0, 0.0]], &[1]),
            query: set(vec![vec![0.0, 0.0, 5.0]], &[0]),
        },
    ];
    let adapt = AdaptConfig::new(0.1)
        .with_inner_steps(0)
        .with_loss(Loss::CrossEntropy);
    let per_task = eval_accuracy::<B, Layered<maml_core::SecondOrder<B>>>(
        &model, None, &tasks, &adapt, &device,
    )
    .unwrap();
    assert_eq!(per_task.len(), 2);
    assert!(
        (per_task[0] - 2.0 / 3.0).abs() < 1e-6 && per_task[1] == 0.0,
        "{per_task:?}"
    );
}
