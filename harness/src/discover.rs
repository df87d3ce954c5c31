//! Turning command-line paths into the list of scenario files to load.

use crate::diagnostic::FileError;
use std::fs;
use std::path::{Path, PathBuf};

/// The scenario files found under some paths, and the paths that could not be used.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Sorted by path and free of duplicates, so every command's output is deterministic.
    pub files: Vec<PathBuf>,
    pub errors: Vec<FileError>,
}

/// Collects scenario files from `paths`.
///
/// A file argument is taken as is, whatever its extension, because naming a file is explicit. A
/// directory contributes its `*.yaml` and `*.yml` entries, not recursively; hidden entries are
/// skipped since they are editor backups and lock files, not scenarios. A directory without any
/// scenario file is an error, because it almost always means a wrong path.
pub fn discover(paths: &[PathBuf]) -> Discovery {
    let mut found = Discovery::default();
    for path in paths {
        match fs::metadata(path) {
            Err(source) => found.errors.push(FileError::Io {
                path: path.clone(),
                source,
            }),
            Ok(meta) if meta.is_dir() => match scenarios_in(path) {
                Ok(files) if files.is_empty() => {
                    found
                        .errors
                        .push(FileError::NoScenarios { path: path.clone() });
                }
                Ok(files) => found.files.extend(files),
                Err(source) => found.errors.push(FileError::Io {
                    path: path.clone(),
                    source,
                }),
            },
            Ok(_) => found.files.push(path.clone()),
        }
    }
    found.files.sort();
    found.files.dedup();
    found
}

/// The scenario files directly inside `dir`, in the order `read_dir` returns them.
fn scenarios_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if is_scenario_name(&path) && !path.is_dir() {
            files.push(path);
        }
    }
    Ok(files)
}

fn is_scenario_name(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .is_some_and(|name| name.as_encoded_bytes().starts_with(b"."));
    let yaml = path
        .extension()
        .is_some_and(|ext| ext == "yaml" || ext == "yml");
    yaml && !hidden
}

#[cfg(test)]
mod tests {
    use super::is_scenario_name;
    use std::path::Path;

    #[test]
    fn only_visible_yaml_files_are_scenarios() {
        assert!(is_scenario_name(Path::new("dir/a.yaml")));
        assert!(is_scenario_name(Path::new("dir/a.yml")));
        assert!(!is_scenario_name(Path::new("dir/.a.yaml")));
        assert!(!is_scenario_name(Path::new("dir/a.yaml~")));
        assert!(!is_scenario_name(Path::new("dir/README.md")));
        assert!(!is_scenario_name(Path::new("dir/yaml")));
    }
}
