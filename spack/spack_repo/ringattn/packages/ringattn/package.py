# RingAttn's Spack recipe (Package API v2.0). It ships inside the RingAttn
# source tree, at spack/spack_repo/ringattn/packages/ringattn/, and builds the
# git checkout it ships in; see docs/packaging.md.
import os

from spack_repo.builtin.build_systems.cmake import CMakePackage
from spack_repo.builtin.build_systems.cuda import CudaPackage

from spack.package import *


def _source_checkout() -> str:
    """The RingAttn checkout that holds this recipe (five folders up)."""
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, *([os.pardir] * 5)))


class Ringattn(CMakePackage, CudaPackage):
    """Exact ring attention (dense and LongNet-dilated) for Kokkos applications.

    The sequence is split over the ranks of an MPI communicator, or over the
    members of a simulated ring in one process; key/value blocks travel around
    the ring and partial results merge with a log-sum-exp. Header-only
    library (CMake package RingAttn, target RingAttn::ringattn) and the
    ringattn program that runs YAML input decks."""

    git = "file://" + _source_checkout()

    license("BSD-3-Clause")

    version("main", branch="main")

    variant("mpi", default=True, description="MPI ring: forward() on an MPI communicator")
    variant("openmp", default=True, description="Kokkos' OpenMP host backend (off: Serial)")
    variant("tests", default=False, description="Build the unit tests and benchmarks")
    variant(
        "blas",
        default=True,
        when="~cuda",
        description="Host fast path: tile GEMMs through CBLAS (blas_provider)",
    )
    # The CBLAS of the tile GEMMs: MKL measured fastest on the tile shapes
    # (README, ringattn_tile_gemm_probe); OpenBLAS is the lighter dependency.
    variant(
        "blas_provider",
        default="mkl",
        values=("mkl", "openblas"),
        multi=False,
        when="+blas",
        description="CBLAS of the host tile GEMMs (RingAttn_BLAS_PROVIDER)",
    )
    # Kokkos builds for one CUDA architecture at a time, so this is one value
    # (not CudaPackage's list), passed on to Kokkos below.
    variant(
        "cuda_arch",
        description="CUDA architecture (passed on to Kokkos)",
        values=("none",) + CudaPackage.cuda_arch_values,
        default="none",
        multi=False,
        sticky=True,
        when="+cuda",
    )

    depends_on("cxx", type="build")
    depends_on("cmake@3.16:", type="build")

    # RingAttn is written to the Kokkos API common to 3.4 to 5.x (one compat
    # header); its CMakeLists.txt accepts Kokkos 3.4 and later. CI builds and
    # tests Kokkos 3.4.1 only.
    depends_on("kokkos@3.4:")

    # The variants describe the build, so they hold both ways.
    depends_on("kokkos+openmp", when="+openmp")
    depends_on("kokkos~openmp", when="~openmp")
    depends_on("kokkos+cuda", when="+cuda")
    depends_on("kokkos~cuda", when="~cuda")
    for _arch in CudaPackage.cuda_arch_values:
        depends_on(f"kokkos+cuda cuda_arch={_arch}", when=f"+cuda cuda_arch={_arch}")
    # Device lambdas (KOKKOS_LAMBDA); always on from Kokkos 5.
    depends_on("kokkos+cuda_lambda", when="+cuda ^kokkos@:4")
    conflicts("cuda_arch=none", when="+cuda", msg="+cuda needs a cuda_arch (one value)")

    depends_on("mpi", when="+mpi")
    depends_on("yaml-cpp@0.6:")  # the ringattn program reads YAML decks
    depends_on("openblas", when="+blas blas_provider=openblas")
    # lp64 interface + sequential layer: one GEMM thread per Kokkos thread
    depends_on("intel-oneapi-mkl~ilp64", when="+blas blas_provider=mkl")
    depends_on("catch2@2.13:2", type="build", when="+tests")
    # The MPI tests run Open MPI's mpiexec with --oversubscribe.
    requires("^openmpi", when="+tests +mpi", msg="the MPI tests need Open MPI's mpiexec")

    def cmake_args(self):
        spec = self.spec
        args = [
            self.define_from_variant("RingAttn_ENABLE_MPI", "mpi"),
            self.define("RingAttn_ENABLE_BLAS", spec.satisfies("+blas")),
            self.define("RingAttn_ENABLE_DRIVER", True),
            self.define_from_variant("RingAttn_ENABLE_TESTS", "tests"),
            self.define_from_variant("RingAttn_ENABLE_PERF_TESTS", "tests"),
            # That test rebuilds RingAttn from scratch and runs mpirun: CI only.
            self.define("RingAttn_ENABLE_PACKAGING_TESTS", False),
            # Spack sets the target's flags (no -march=native).
            self.define("RingAttn_ENABLE_NATIVE", False),
            self.define("Kokkos_ROOT", spec["kokkos"].prefix),
        ]
        if spec.satisfies("+blas blas_provider=openblas"):
            args.append(self.define("RingAttn_BLAS_PROVIDER", "OpenBLAS"))
            args.append(self.define("BLA_VENDOR", "OpenBLAS"))
        if spec.satisfies("+blas blas_provider=mkl"):
            args.append(self.define("RingAttn_BLAS_PROVIDER", "MKL"))
            # MKLROOT of the oneAPI install: <prefix>/mkl/latest
            mkl = spec["intel-oneapi-mkl"].prefix
            args.append(self.define("RingAttn_MKL_ROOT", join_path(mkl, "mkl", "latest")))
        if spec.satisfies("+mpi"):
            args.append(self.define("MPI_CXX_COMPILER", spec["mpi"].mpicxx))
        if spec.satisfies("^kokkos+cuda"):
            # The compiler Kokkos was built with: nvcc_wrapper (or clang).
            args.append(self.define("CMAKE_CXX_COMPILER", self["kokkos"].kokkos_cxx))
        return args
