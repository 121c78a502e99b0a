//! Images for few-shot classification: classes in the Omniglot layout
//! (`ALPHABET/CHARACTER/*.png`) and the official one-shot runs (`runNN/training`,
//! `runNN/test`, `class_labels.txt`), read from a folder or straight from a zip of one.
//!
//! Every image is decoded once, converted to grey, resized to 28x28 (Lanczos) and
//! inverted so that ink is 1.0 and background 0.0, as MAML's and learn2learn's
//! preprocessing does. An example is the image flattened row by row, `[28·28]`, the
//! input of a model whose `input` is `[1, 28, 28]`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use maml_core::data::{SetData, TaskData};
use maml_core::error::{MamlError, Result};

/// The side of every image after resizing.
pub const SIDE: usize = 28;

/// The shape of one example, `[C, H, W]`.
pub const IMAGE_SHAPE: [usize; 3] = [1, SIDE, SIDE];

/// The files under a folder or in a zip archive, by path relative to it (`/`-separated),
/// and the folders (or zip directory entries) that hold no file at all.
struct Tree {
    files: BTreeMap<String, Vec<u8>>,
    empty_dirs: Vec<String>,
}

impl Tree {
    /// Reads `path`: a zip archive if it is a file, otherwise a folder, recursively.
    fn read(path: &Path) -> Result<Self> {
        if path.is_file() {
            return Self::read_zip(path);
        }
        let mut tree = Tree {
            files: BTreeMap::new(),
            empty_dirs: Vec::new(),
        };
        tree.walk(path, "")?;
        Ok(tree)
    }

    fn walk(&mut self, dir: &Path, prefix: &str) -> Result<()> {
        let entries = std::fs::read_dir(dir).map_err(|e| MamlError::io("cannot read", dir, e))?;
        let mut any = false;
        for entry in entries {
            let entry = entry.map_err(|e| MamlError::io("cannot read", dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let relative = format!("{prefix}{name}");
            any = true;
            if path.is_dir() {
                self.walk(&path, &format!("{relative}/"))?;
            } else {
                let bytes =
                    std::fs::read(&path).map_err(|e| MamlError::io("cannot read", &path, e))?;
                self.files.insert(relative, bytes);
            }
        }
        if !any && !prefix.is_empty() {
            self.empty_dirs
                .push(prefix.trim_end_matches('/').to_string());
        }
        Ok(())
    }

    fn read_zip(path: &Path) -> Result<Self> {
        let bad = |detail: String| MamlError::BadData {
            location: path.display().to_string(),
            detail,
        };
        let file = std::fs::File::open(path).map_err(|e| MamlError::io("cannot read", path, e))?;
        let mut archive =
            zip::ZipArchive::new(file).map_err(|e| bad(format!("not a zip archive ({e})")))?;
        let mut files = BTreeMap::new();
        let mut dirs = Vec::new();
        for i in 0..archive.len() {
            let mut entry = archive
                .by_index(i)
                .map_err(|e| bad(format!("entry {i}: {e}")))?;
            let name = entry.name().to_string();
            if entry.is_dir() {
                dirs.push(name.trim_end_matches('/').to_string());
                continue;
            }
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| bad(format!("entry {name}: {e}")))?;
            files.insert(name, bytes);
        }
        let empty_dirs = dirs
            .into_iter()
            .filter(|d| {
                let inside = format!("{d}/");
                !files.keys().any(|f| f.starts_with(&inside))
            })
            .collect();
        Ok(Tree { files, empty_dirs })
    }
}

/// A file of a [`Tree`]: its path and its bytes.
type File<'a> = (String, &'a [u8]);

fn is_png(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".png")
}

/// Decodes one PNG into a `28·28` example: grey, resized, ink 1.0, background 0.0.
pub fn decode_png(bytes: &[u8], location: &str) -> Result<Vec<f64>> {
    let image =
        image::load_from_memory_with_format(bytes, image::ImageFormat::Png).map_err(|e| {
            MamlError::BadData {
                location: location.into(),
                detail: format!("not a readable PNG image ({e})"),
            }
        })?;
    let grey = image.to_luma32f();
    let small = image::imageops::resize(
        &grey,
        SIDE as u32,
        SIDE as u32,
        image::imageops::FilterType::Lanczos3,
    );
    Ok(small
        .pixels()
        .map(|p| (1.0 - f64::from(p.0[0])).clamp(0.0, 1.0))
        .collect())
}

/// A `28·28` example rotated by 90° counter-clockwise, `quarters` times (NumPy's
/// `rot90`).
pub fn rotate(image: &[f64], quarters: usize) -> Vec<f64> {
    let mut out = image.to_vec();
    for _ in 0..quarters % 4 {
        let prev = out.clone();
        for i in 0..SIDE {
            for j in 0..SIDE {
                out[i * SIDE + j] = prev[j * SIDE + (SIDE - 1 - i)];
            }
        }
    }
    out
}

/// A `28·28` example moved `dy` pixels down and `dx` right; pixels moved in from outside
/// are background (0).
pub fn translate(image: &[f64], dy: i64, dx: i64) -> Vec<f64> {
    let side = SIDE as i64;
    let mut out = vec![0.0; image.len()];
    for i in 0..side {
        for j in 0..side {
            let (from_i, from_j) = (i - dy, j - dx);
            if (0..side).contains(&from_i) && (0..side).contains(&from_j) {
                out[(i * side + j) as usize] = image[(from_i * side + from_j) as usize];
            }
        }
    }
    out
}

/// One class of images.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageClass {
    /// `ALPHABET/CHARACTER`, with `@90`, `@180` or `@270` for a rotated copy.
    pub name: String,
    /// The examples, `[images][28·28]`, in file-name order.
    pub images: Vec<Vec<f64>>,
}

/// Image classes in the Omniglot layout, decoded once and kept in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageClasses {
    /// The classes, sorted by name (rotations of a character next to it).
    pub classes: Vec<ImageClass>,
}

impl ImageClasses {
    /// Reads every `ALPHABET/CHARACTER/*.png` under `path` (a folder, or a zip archive of
    /// one; any folders above the alphabets are skipped), keeping only the alphabets
    /// named in `alphabets` (all when empty). With `rotations`, each character at 0, 90,
    /// 180 and 270 degrees is a class of its own. Files that are not PNG images are
    /// ignored; an unreadable image, an empty character folder or an alphabet that is
    /// not there is an error that names it.
    pub fn load(path: &Path, alphabets: &[String], rotations: bool) -> Result<Self> {
        let tree = Tree::read(path)?;
        let root = path.display().to_string();
        let mut by_class: BTreeMap<(String, String), Vec<File<'_>>> = BTreeMap::new();
        for (name, bytes) in &tree.files {
            let parts: Vec<&str> = name.split('/').collect();
            if !is_png(name) || parts.len() < 3 {
                continue;
            }
            let [alphabet, character] = [parts[parts.len() - 3], parts[parts.len() - 2]];
            by_class
                .entry((alphabet.to_string(), character.to_string()))
                .or_default()
                .push((name.clone(), bytes.as_slice()));
        }
        if let Some(dir) = tree.empty_dirs.first() {
            return Err(MamlError::BadData {
                location: format!("{root}/{dir}"),
                detail: "an empty class folder: every character needs its images".into(),
            });
        }
        if by_class.is_empty() {
            return Err(MamlError::BadData {
                location: root,
                detail: "no images in the layout ALPHABET/CHARACTER/*.png".into(),
            });
        }
        let found: std::collections::BTreeSet<&str> =
            by_class.keys().map(|(a, _)| a.as_str()).collect();
        if let Some(missing) = alphabets.iter().find(|a| !found.contains(a.as_str())) {
            return Err(MamlError::BadData {
                location: root,
                detail: format!(
                    "no alphabet {missing:?}; the alphabets here are {}",
                    found.iter().copied().collect::<Vec<_>>().join(", ")
                ),
            });
        }
        let mut classes = Vec::new();
        for ((alphabet, character), files) in by_class {
            if !alphabets.is_empty() && !alphabets.contains(&alphabet) {
                continue;
            }
            let images = files
                .iter()
                .map(|(name, bytes)| decode_png(bytes, &format!("{root}/{name}")))
                .collect::<Result<Vec<_>>>()?;
            let quarters = if rotations { 4 } else { 1 };
            for r in 0..quarters {
                let name = match r {
                    0 => format!("{alphabet}/{character}"),
                    r => format!("{alphabet}/{character}@{}", r * 90),
                };
                let images = images.iter().map(|im| rotate(im, r)).collect();
                classes.push(ImageClass { name, images });
            }
        }
        Ok(Self { classes })
    }

    /// Number of images in all classes.
    pub fn images(&self) -> usize {
        self.classes.iter().map(|c| c.images.len()).sum()
    }
}

/// One of the official 20-way one-shot runs: adapt on `task.support` (one image of
/// each class, labels one-hot in the order of the training files), classify
/// `task.query` (its labels are the answers).
#[derive(Debug, Clone, PartialEq)]
pub struct OneShotRun {
    /// The run's folder name, `runNN`.
    pub name: String,
    /// Support: the training images; query: the test items.
    pub task: TaskData,
}

fn one_hot(label: usize, ways: usize) -> Vec<f64> {
    let mut row = vec![0.0; ways];
    row[label] = 1.0;
    row
}

/// Reads every run (`runNN/class_labels.txt` with its `training` and `test` images)
/// under `path`, a folder or a zip archive of one. Each line of `class_labels.txt` is
/// `runNN/test/itemYY.png runNN/training/classZZ.png`, paths relative to the folder
/// that holds the runs.
pub fn load_runs(path: &Path) -> Result<Vec<OneShotRun>> {
    let tree = Tree::read(path)?;
    let root = path.display().to_string();
    let mut runs = Vec::new();
    for (name, bytes) in &tree.files {
        let Some(run_dir) = name
            .strip_suffix("/class_labels.txt")
            .or_else(|| (name == "class_labels.txt").then_some(""))
        else {
            continue;
        };
        let holder = match run_dir.rfind('/') {
            Some(i) => &run_dir[..=i],
            None => "",
        };
        let run_name = run_dir.rsplit('/').next().unwrap_or(run_dir).to_string();
        let at = format!("{root}/{name}");
        let text = std::str::from_utf8(bytes).map_err(|_| MamlError::BadData {
            location: at.clone(),
            detail: "not UTF-8 text".into(),
        })?;
        let mut pairs = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields[..] {
                [] => {}
                [test, train] => pairs.push((test.to_string(), train.to_string())),
                _ => {
                    return Err(MamlError::BadData {
                        location: format!("{at}, line {}", i + 1),
                        detail: format!("expected `TEST_IMAGE TRAINING_IMAGE`, got {line:?}"),
                    });
                }
            }
        }
        if pairs.is_empty() {
            return Err(MamlError::BadData {
                location: at,
                detail: "no test items listed".into(),
            });
        }
        let image = |relative: &str| -> Result<Vec<f64>> {
            let key = format!("{holder}{relative}");
            let bytes = tree.files.get(&key).ok_or_else(|| MamlError::BadData {
                location: at.clone(),
                detail: format!("lists {relative}, which is not in {root}"),
            })?;
            decode_png(bytes, &format!("{root}/{key}"))
        };
        let training: Vec<String> = pairs
            .iter()
            .map(|(_, train)| train.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let ways = training.len();
        let label = |train: &str| training.iter().position(|t| t == train).unwrap_or(0);
        let support = SetData {
            x: training.iter().map(|t| image(t)).collect::<Result<_>>()?,
            y: Some((0..ways).map(|c| one_hot(c, ways)).collect()),
        };
        let query = SetData {
            x: pairs.iter().map(|(t, _)| image(t)).collect::<Result<_>>()?,
            y: Some(
                pairs
                    .iter()
                    .map(|(_, train)| one_hot(label(train), ways))
                    .collect(),
            ),
        };
        runs.push(OneShotRun {
            name: run_name,
            task: TaskData { support, query },
        });
    }
    if runs.is_empty() {
        return Err(MamlError::BadData {
            location: root,
            detail: "no runNN/class_labels.txt found".into(),
        });
    }
    Ok(runs)
}
