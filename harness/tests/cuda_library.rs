//! libtorch's CUDA library, loaded at start-up instead of linked (`harness::device::load_cuda_library`).
//! Its own test binary: libtorch decides once per process, on the first CUDA question, whether CUDA
//! exists, and another test asking first (a seed, a device check) would decide it here.
use harness::device::{load_cuda_library, CudaLibrary};
use tch::{Device, Kind, Tensor};

/// What libtorch says of a tensor on the GPU when its CUDA backend was never loaded: no kernel is
/// registered for it (tensor creation), or CUDA cannot start without the library (CUDA queries).
fn backend_missing(message: &str) -> bool {
    message.contains("with arguments from the 'CUDA' backend") || message.contains("without ATen_cuda library")
}

#[test]
fn loading_the_cuda_library_gives_libtorch_its_cuda_backend_or_says_why_not() {
    let outcome = load_cuda_library().clone();
    assert_eq!(load_cuda_library(), &outcome, "loaded once: a second call returns the first outcome");
    let on_gpu = Tensor::f_zeros([1], (Kind::Float, Device::Cuda(0)));
    match &outcome {
        // With the CUDA libraries present the backend is registered: a tensor on the GPU either
        // works (a GPU machine) or fails for want of a driver or device, never for want of the backend.
        CudaLibrary::Loaded(path) => {
            assert!(path.ends_with("libtorch_cuda.so") && path.is_file(), "{path:?}");
            if let Err(e) = on_gpu {
                let e = e.to_string();
                eprintln!("a tensor on the GPU, with the CUDA backend loaded: {}", e.lines().next().unwrap_or(""));
                assert!(!backend_missing(&e), "loaded, yet libtorch has no CUDA backend: {e}");
            }
            assert!(outcome.to_string().starts_with("loaded ("), "{outcome}");
        }
        // `make setup`'s venv: the library is there but its CUDA libraries are not; the reason names
        // the one missing, and libtorch runs on the CPU without a CUDA backend.
        CudaLibrary::Unloadable { path, reason } => {
            assert!(path.is_file(), "{path:?}");
            assert!(reason.contains(".so") && reason.contains("cannot open shared object file"), "{reason}");
            let e = on_gpu.expect_err("no CUDA backend, so no tensor on a GPU").to_string();
            assert!(backend_missing(&e), "{e}");
            let shown = outcome.to_string();
            assert!(shown.contains(reason.as_str()) && shown.contains("make setup-full"), "{shown}");
        }
        CudaLibrary::Absent(path) => {
            assert!(!path.exists(), "{path:?}");
            assert!(backend_missing(&on_gpu.expect_err("a CPU-only libtorch").to_string()));
        }
    }
    // The CPU is unaffected either way.
    let s = Tensor::ones([2, 2], (Kind::Float, Device::Cpu)).matmul(&Tensor::ones([2, 2], (Kind::Float, Device::Cpu)));
    assert_eq!(f64::try_from(s.sum(Kind::Float)).unwrap(), 8.0);
}
