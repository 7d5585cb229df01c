//! `cargo bench --bench suite`: the whole suite against the reference UA, timed. Prints the
//! wall time of each run (goal: under 60 s on 2 cores with the reference profile), the slowest
//! cases, and how much running cases at once saves. Figures, not assertions: a timed test
//! would flake on a busy machine.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

const RUNS: usize = 3;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!("srvlab suite benchmark: {RUNS} runs per setting, {cores} cores");
    for jobs in ["4", "1"] {
        let mut walls = Vec::new();
        let mut slowest = Vec::new();
        for run in 0..RUNS {
            let out = std::env::temp_dir()
                .join(format!("srvlab-bench-{}-{jobs}-{run}", std::process::id()));
            let started = Instant::now();
            let output = Command::new(env!("CARGO_BIN_EXE_srvlab"))
                .args([
                    "run",
                    "--jobs",
                    jobs,
                    "--seed",
                    &(run + 1).to_string(),
                    "--out",
                ])
                .arg(&out)
                .current_dir(root)
                .output()
                .expect("run srvlab");
            let wall = started.elapsed().as_secs_f64();
            if !output.status.success() {
                eprintln!(
                    "run {run} with --jobs {jobs} exited {:?}:\n{}",
                    output.status.code(),
                    String::from_utf8_lossy(&output.stdout)
                );
            }
            walls.push(wall);
            if run == 0 {
                slowest = case_seconds(&out.join("report.json"));
            }
            let _ = std::fs::remove_dir_all(&out);
        }
        walls.sort_by(f64::total_cmp);
        println!(
            "--jobs {jobs}: suite wall time min {:.1} s, median {:.1} s, max {:.1} s",
            walls[0],
            walls[walls.len() / 2],
            walls[walls.len() - 1]
        );
        slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
        let total: f64 = slowest.iter().map(|(_, s)| s).sum();
        println!(
            "  {} cases, {total:.1} s of case time; slowest: {}",
            slowest.len(),
            slowest
                .iter()
                .take(4)
                .map(|(id, s)| format!("{id} {s:.1} s"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// (case id, seconds) from a report.json.
fn case_seconds(report: &Path) -> Vec<(String, f64)> {
    let Ok(text) = std::fs::read_to_string(report) else {
        return Vec::new();
    };
    let report: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    report["cases"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|case| {
            (
                case["id"].as_str().unwrap_or("?").to_string(),
                case["seconds"].as_f64().unwrap_or(0.0),
            )
        })
        .collect()
}
