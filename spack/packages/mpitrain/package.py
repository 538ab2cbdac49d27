# Copyright mpitrain contributors. See LICENSE for details.
#
# SPDX-License-Identifier: Apache-2.0

# Spack recipe: `spack repo add ./spack && spack install mpitrain [+cuda cuda_arch=90] ^openmpi`.
# Offline on Debian 12 with Debian's packages as externals: spack/environments/debian12.

import glob
import os

from spack_repo.builtin.build_systems.cmake import CMakePackage, generator
from spack_repo.builtin.build_systems.cuda import CudaPackage

from spack.package import *


class Mpitrain(CMakePackage, CudaPackage):
    """MPI-native distributed deep-learning training for LibTorch (C++) on HPC clusters:
    a Lightning-style Module and Trainer, DDP, Horovod-style and sharded strategies,
    spawn-style workers, HDF5 checkpoints and hyperparameter sweeps on MPI, NCCL, HDF5
    and Slurm."""

    # The project has no public hosting yet: these name where it will live. Builds from a
    # checkout (`spack develop` / `spack dev-build`) need neither.
    homepage = "https://example.invalid/mpitrain"
    git = "https://example.invalid/mpitrain.git"

    license("Apache-2.0")

    version("main", branch="main")
    # project(mpitrain VERSION 0.1.0) in CMakeLists.txt at this commit.
    version("0.1.0", commit="cd58fae0f069c857d73fc04fd4c2859910561e27")

    generator("ninja", "make", default="ninja")

    variant(
        "nccl",
        default=True,
        when="+cuda",
        description="Build the NCCL backend (use_gpu: one CUDA device per rank)",
    )
    variant("apps", default=True, description="Build the CLI apps (mpitrain-train, ...)")
    variant("tests", default=False, description="Build the GoogleTest suites")

    conflicts("cuda_arch=none", when="+cuda", msg="+cuda needs a cuda_arch, e.g. cuda_arch=90")

    depends_on("c", type="build")
    depends_on("cxx", type="build")

    # The lower bounds are CMakeLists.txt's find_package() versions.
    depends_on("cmake@3.25:", type="build")
    depends_on("mpi")
    # LibTorch's TorchConfig.cmake (1.13 is Debian 12's)
    depends_on("py-torch@1.13:")
    depends_on("py-torch~cuda", when="~cuda")
    depends_on("hdf5@1.10.5: +cxx")  # H5Dget_chunk_info, H5Dwrite_chunk; serial is enough
    depends_on("boost@1.74: +program_options")
    depends_on("nlohmann-json@3:")
    depends_on("zlib-api")
    depends_on("googletest", type=("build", "test"), when="+tests")

    with when("+cuda"):
        depends_on("nccl", when="+nccl")
        # Forward the GPU architecture to every CUDA dependency (as LBANN and Aluminum do).
        for arch in CudaPackage.cuda_arch_values:
            depends_on(f"py-torch+cuda cuda_arch={arch}", when=f"cuda_arch={arch}")
            depends_on(f"nccl+cuda cuda_arch={arch}", when=f"+nccl cuda_arch={arch}")

    @when("@0.1.0")
    def patch(self):
        # 0.1.0 set CMAKE_INSTALL_RPATH and so dropped Spack's: append to it (as main does).
        filter_file(
            r"set\(CMAKE_INSTALL_RPATH ", "list(APPEND CMAKE_INSTALL_RPATH ", "CMakeLists.txt"
        )

    def _torch_dir(self):
        """The directory of TorchConfig.cmake: a Spack-built py-torch has it under its
        site-packages, Debian's libtorch-dev (an external at /usr) under lib/<multiarch>."""
        torch = self.spec["py-torch"]
        candidates = [join_path(p, "Torch") for p in torch.package.cmake_prefix_paths]
        candidates += glob.glob(join_path(torch.prefix, "lib*", "*", "cmake", "Torch"))
        candidates.append(join_path(torch.prefix.lib, "cmake", "Torch"))
        for d in candidates:
            if os.path.isfile(join_path(d, "TorchConfig.cmake")):
                return d
        return None

    def cmake_args(self):
        spec = self.spec
        args = [
            self.define_from_variant("MPITRAIN_BUILD_TESTS", "tests"),
            self.define_from_variant("MPITRAIN_BUILD_APPS", "apps"),
            self.define("MPITRAIN_WITH_NCCL", spec.satisfies("+cuda+nccl")),
            self.define("MPI_CXX_COMPILER", spec["mpi"].mpicxx),
        ]
        torch_dir = self._torch_dir()
        if torch_dir:
            args.append(self.define("Torch_DIR", torch_dir))
        if spec.satisfies("+cuda"):
            args.append(self.define("CUDAToolkit_ROOT", spec["cuda"].prefix))
            args.append(self.define("CMAKE_CUDA_ARCHITECTURES", spec.variants["cuda_arch"].value))
        if spec.satisfies("+cuda+nccl"):
            nccl = spec["nccl"]
            args.append(self.define("NCCL_INCLUDE_DIR", nccl.prefix.include))
            args.append(self.define("NCCL_LIBRARY", nccl.libs[0]))
        return args

    # ---- spack test run mpitrain ------------------------------------------------------------
    downstream_dir = join_path("tests", "e2e", "downstream")

    @run_after("install")
    def cache_test_sources(self):
        """Keep the downstream find_package(mpitrain) project for `spack test run`."""
        cache_extra_test_sources(self, [self.downstream_dir])

    def _mpi_test_env(self):
        """Open MPI on one small node, as scripts/mpi-env.sh sets it: ranks may outnumber
        cores, TCP on loopback only, and root is allowed (containers)."""
        env = {
            "OMPI_MCA_rmaps_base_oversubscribe": "1",
            "OMPI_MCA_btl_tcp_if_include": "lo",
            "OMPI_MCA_oob_tcp_if_include": "lo",
        }
        if os.geteuid() == 0:
            env.update({"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"})
        os.environ.update(env)

    def _train(self):
        if self.spec.satisfies("~apps"):
            raise SkipTest("mpitrain~apps installs no mpitrain-train")
        return which(self.prefix.bin.join("mpitrain-train"), required=True)

    # A tiny job: synthetic data, a few batches, nothing written but its logs.
    smoke_args = [
        "--dataset",
        "synthetic",
        "--epochs",
        "1",
        "--limit-train-batches",
        "4",
        "--limit-val-batches",
        "2",
        "--no-progress",
        "--no-checkpoint",
    ]

    def test_train_help(self):
        """mpitrain-train --help lists its options"""
        out = self._train()("--help", output=str, error=str)
        assert "--workers" in out and "--strategy" in out, out

    def test_mpirun_smoke(self):
        """a 2-rank mpirun job of mpitrain-train (SPMD) trains a few batches"""
        train = self._train()
        self._mpi_test_env()
        mpiexec = which(self.spec["mpi"].prefix.bin.mpiexec, required=True)
        mkdirp("mpirun-out")
        out = mpiexec(
            "-n",
            "2",
            train.path,
            *self.smoke_args,
            "--output-dir",
            "mpirun-out",
            output=str,
            error=str,
            timeout=300,
        )
        assert '"workers":2' in out and "val_loss" in out, out

    def test_spawn_smoke(self):
        """mpitrain-train alone spawns 2 workers (libexec/mpitrain/mpitrain-leader)"""
        train = self._train()
        self._mpi_test_env()
        mkdirp("spawn-out")
        out = train(
            "--workers",
            "2",
            *self.smoke_args,
            "--output-dir",
            "spawn-out",
            output=str,
            error=str,
            timeout=300,
        )
        assert '"workers":2' in out and "val_loss" in out, out

    def test_find_package(self):
        """a downstream CMake project builds with find_package(mpitrain) and runs"""
        self._mpi_test_env()
        src = join_path(self.test_suite.current_test_cache_dir, self.downstream_dir)
        cmake = which(self.spec["cmake"].prefix.bin.cmake, required=True)
        prefixes = [self.prefix] + [d.prefix for d in self.spec.dependencies(deptype="link")]
        args = [
            "-S",
            src,
            "-B",
            "downstream-build",
            self.define("CMAKE_PREFIX_PATH", ";".join(str(p) for p in prefixes)),
            self.define("CMAKE_CXX_COMPILER", self.spec["cxx"].package.cxx),
            self.define("CMAKE_C_COMPILER", self.spec["c"].package.cc),
        ]
        mpicxx = join_path(self.spec["mpi"].prefix.bin, "mpicxx")
        if os.path.exists(mpicxx):
            args.append(self.define("MPI_CXX_COMPILER", mpicxx))
        torch_dir = self._torch_dir()
        if torch_dir:
            args.append(self.define("Torch_DIR", torch_dir))
        cmake(*args)
        cmake("--build", "downstream-build")
        exe = which(join_path("downstream-build", "downstream"), required=True)
        out = exe(output=str, error=str, timeout=120)
        assert "allreduce ok" in out, out
