//! Runs a target's body on saved inputs, without AFL++: `replay TARGET FILE...` (a directory
//! stands for the files in it, not its subdirectories). A failed property panics, naming the file first.

use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(name) = args.next() else {
        eprintln!("usage: replay TARGET FILE...");
        std::process::exit(2);
    };
    let Some(body) = evo_siem_fuzz::target(&name) else {
        eprintln!("unknown target {name:?}");
        std::process::exit(2);
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for arg in args {
        let path = PathBuf::from(arg);
        match std::fs::read_dir(&path) {
            Ok(entries) => {
                files.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()))
            }
            Err(_) => files.push(path),
        }
    }
    files.sort();
    for file in &files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        eprintln!("{}", file.display());
        body(&data);
    }
    println!("{name}: {} inputs, no failure", files.len());
}
