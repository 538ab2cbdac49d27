# Spack recipe: `spack repo add ./spack && spack install mpitrain [+cuda cuda_arch=80]`.
from spack.package import *


class Mpitrain(CMakePackage, CudaPackage):
    """MPI-native distributed deep-learning training for LibTorch (C++) on HPC clusters."""

    homepage = "https://example.invalid/mpitrain"
    git = "https://example.invalid/mpitrain.git"

    version("main", branch="main")

    variant("tests", default=False, description="Build the GoogleTest suites")

    depends_on("cmake@3.25:", type="build")
    depends_on("mpi")
    depends_on("py-torch")  # provides LibTorch's TorchConfig.cmake
    depends_on("hdf5+cxx~mpi")
    depends_on("boost+program_options")
    depends_on("nlohmann-json")
    depends_on("googletest", when="+tests")
    depends_on("nccl", when="+cuda")
    # Forward the GPU architecture to every CUDA dependency (as LBANN's recipe does).
    for arch in CudaPackage.cuda_arch_values:
        depends_on(f"nccl cuda_arch={arch}", when=f"+cuda cuda_arch={arch}")
        depends_on(f"py-torch+cuda cuda_arch={arch}", when=f"+cuda cuda_arch={arch}")

    def cmake_args(self):
        args = [
            self.define_from_variant("MPITRAIN_BUILD_TESTS", "tests"),
            self.define_from_variant("MPITRAIN_WITH_NCCL", "cuda"),
            self.define("Torch_DIR", join_path(self.spec["py-torch"].package.cmake_prefix_paths[0], "Torch")),
        ]
        if self.spec.satisfies("+cuda"):
            args.append(self.define("CUDAToolkit_ROOT", self.spec["cuda"].prefix))
        return args
