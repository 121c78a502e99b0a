//! N-way K-shot classification tasks drawn from image classes (Omniglot), and where a
//! run's classes come from.

use std::path::Path;
use std::sync::Arc;

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use serde::{Deserialize, Serialize};

use crate::images::{IMAGE_SHAPE, ImageClasses, SIDE, translate};
use maml_core::data::families::TaskFamily;
use maml_core::data::{SetData, TaskData};
use maml_core::error::{MamlError, Result};

/// Where the classes of an image task family come from, and the shape of its tasks: what
/// a training configuration stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSource {
    /// A folder in the Omniglot layout (`ALPHABET/CHARACTER/*.png`) or a zip of one.
    pub data: String,
    /// Classes per task, N.
    pub ways: usize,
    /// Support images per class, K.
    pub shots: usize,
    /// Query images per class, Q.
    pub queries: usize,
    /// Each character at 0, 90, 180 and 270 degrees is a class of its own.
    #[serde(default)]
    pub rotations: bool,
    /// Only these alphabets (all when empty): a split by alphabet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alphabets: Vec<String>,
    /// Augmentation: every sampled image moved by a random whole number of pixels, up to
    /// this many in each direction (0: none), the uncovered border left blank.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shift: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Refuses a shift of the images' side or more, which could move a whole image out.
fn check_shift(shift: usize) -> Result<()> {
    if shift >= SIDE {
        return Err(MamlError::InvalidHyperparameter {
            name: "shift",
            value: shift.to_string(),
            reason: "must be less than the side of the images, 28",
        });
    }
    Ok(())
}

impl ImageSource {
    /// Checks what can be checked without reading the images (the shift).
    pub fn validate(&self) -> Result<()> {
        check_shift(self.shift)
    }

    /// Reads the classes and checks that every task can be drawn.
    pub fn family(&self) -> Result<FewShotFamily> {
        let classes = ImageClasses::load(Path::new(&self.data), &self.alphabets, self.rotations)?;
        FewShotFamily::new(Arc::new(classes), self.ways, self.shots, self.queries)?
            .with_shift(self.shift)
    }
}

/// N-way K-shot tasks with Q queries per class: each task picks `ways` distinct classes
/// in a random order (class `i` of the task is label `i`, so labels are shuffled per
/// task), then `shots + queries` distinct images of each; support and query rows are
/// grouped by label, targets one-hot. With a shift, every drawn image is then
/// translated at random ([`FewShotFamily::with_shift`]).
#[derive(Debug, Clone)]
pub struct FewShotFamily {
    classes: Arc<ImageClasses>,
    ways: usize,
    shots: usize,
    queries: usize,
    shift: usize,
}

impl FewShotFamily {
    /// A family over `classes`, after checking that there are at least `ways` classes
    /// and that every class has `shots + queries` images.
    pub fn new(
        classes: Arc<ImageClasses>,
        ways: usize,
        shots: usize,
        queries: usize,
    ) -> Result<Self> {
        for (name, value) in [("ways", ways), ("shots", shots), ("queries", queries)] {
            if value == 0 {
                return Err(MamlError::InvalidHyperparameter {
                    name,
                    value: "0".into(),
                    reason: "must be at least 1",
                });
            }
        }
        if ways > classes.classes.len() {
            return Err(MamlError::BadData {
                location: "ways".into(),
                detail: format!(
                    "{ways} classes per task, but the data has {}",
                    classes.classes.len()
                ),
            });
        }
        if let Some(class) = classes
            .classes
            .iter()
            .find(|c| c.images.len() < shots + queries)
        {
            return Err(MamlError::BadData {
                location: format!("class {}", class.name),
                detail: format!(
                    "{} images, fewer than shots + queries = {}",
                    class.images.len(),
                    shots + queries
                ),
            });
        }
        Ok(Self {
            classes,
            ways,
            shots,
            queries,
            shift: 0,
        })
    }

    /// Moves every drawn image by `(dy, dx)` pixels, each drawn uniformly from
    /// `-shift..=shift`, filling the uncovered border with background (0). A shift of
    /// the image's side or more, which could move a whole image out, is an error.
    pub fn with_shift(mut self, shift: usize) -> Result<Self> {
        check_shift(shift)?;
        self.shift = shift;
        Ok(self)
    }

    /// The classes tasks are drawn from.
    pub fn classes(&self) -> &ImageClasses {
        &self.classes
    }
}

impl TaskFamily for FewShotFamily {
    fn d_in(&self) -> usize {
        IMAGE_SHAPE.iter().product()
    }

    fn d_out(&self) -> usize {
        self.ways
    }

    fn image_shape(&self) -> Option<[usize; 3]> {
        Some(IMAGE_SHAPE)
    }

    fn sample(&self, tasks: usize, rng: &mut StdRng) -> Vec<TaskData> {
        (0..tasks)
            .map(|_| {
                let mut support = SetData {
                    x: Vec::new(),
                    y: Some(Vec::new()),
                };
                let mut query = support.clone();
                let picked = sample(rng, self.classes.classes.len(), self.ways);
                for (label, c) in picked.into_iter().enumerate() {
                    let class = &self.classes.classes[c];
                    let mut target = vec![0.0; self.ways];
                    target[label] = 1.0;
                    let images = sample(rng, class.images.len(), self.shots + self.queries);
                    for (i, image) in images.into_iter().enumerate() {
                        let set = if i < self.shots {
                            &mut support
                        } else {
                            &mut query
                        };
                        let image = &class.images[image];
                        set.x.push(if self.shift == 0 {
                            image.clone()
                        } else {
                            let s = self.shift as i64;
                            let (dy, dx) = (rng.random_range(-s..=s), rng.random_range(-s..=s));
                            translate(image, dy, dx)
                        });
                        set.y
                            .as_mut()
                            .expect("targets set above")
                            .push(target.clone());
                    }
                }
                TaskData { support, query }
            })
            .collect()
    }
}
