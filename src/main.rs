// The allocator (issue 18, BENCHMARKS.md §7): jemalloc by default — glibc malloc/free and its
// arena locks were ~20 % of the gateway's CPU; jemalloc and mimalloc cut CPU per request alike,
// and jemalloc kept the smaller RSS. `--no-default-features` builds with glibc malloc.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    openclawd::cli::main()
}
