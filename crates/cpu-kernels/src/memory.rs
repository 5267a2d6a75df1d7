//! How the process's allocator treats tensor-sized blocks.
//!
//! A training step allocates and frees each activation and gradient (megabytes each). glibc
//! serves blocks above its mmap threshold (128 KiB at start, raised as blocks are freed) with
//! fresh mappings and gives freed heap memory back above 128 KiB, so every step page-faults its
//! tensors in again: 6% of a demo training step's samples were page faults (perf, 2026-12-06).

/// Keeps blocks up to 32 MiB (glibc's ceiling) on the heap and up to 256 MiB of freed heap
/// mapped, so that the next step reuses them. Call once at the start of `main`, before threads.
/// Elsewhere than glibc, does nothing.
pub fn keep_freed_tensor_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}
