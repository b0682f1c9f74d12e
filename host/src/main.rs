// mimalloc: glibc's malloc and free took a sixth of a serving host's CPU
// under load (perf); the allocator is the binary's choice, not the library's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    paddock::cli::on_mimalloc();
    paddock::cli::main()
}
