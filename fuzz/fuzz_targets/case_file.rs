#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| srvlab::fuzz::case_file(data));
