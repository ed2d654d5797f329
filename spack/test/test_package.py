#!/usr/bin/env python3
"""Tests the logic of RingAttn's Spack recipe without Spack (plain python3,
unittest, no other package): the recipe is loaded against a small stand-in
for Spack's package API (spack_standin.py) and checked

* for every combination of its variants (mpi, openmp, tests, blas, cuda with
  several cuda_arch values): the dependencies it imposes and the exact
  CMake arguments it passes, and that each of those names an option that
  RingAttn's CMakeLists.txt defines (or a documented CMake/find-module input);
* for the Kokkos versions it accepts against those RingAttn's CMakeLists.txt
  can find (find_package(Kokkos X) takes Kokkos X.y only);
* for its conflicts and requirements.

What it does not prove (see docs/packaging.md): that Spack itself loads and
concretizes the recipe, that the builtin packages still have the variants
and versions of the snapshot in spack_standin.BUILTIN, or that a Spack build
(fetch, compile, test) succeeds.

Run: python3 spack/test/test_package.py [-v]
"""

import itertools
import os
import re
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, os.pardir, os.pardir))
RECIPE = os.path.join(ROOT, "spack", "spack_repo", "ringattn", "packages", "ringattn", "package.py")
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # leave no __pycache__ in the Spack repository

import spack_standin as sp  # noqa: E402

MODULE, Ringattn = sp.load_recipe(RECIPE, "Ringattn")

# CMake inputs that are not RingAttn options but that CMake or the find
# modules RingAttn uses read (FindMPI, FindBLAS, find_package's <Pkg>_ROOT).
CMAKE_INPUTS = {"CMAKE_CXX_COMPILER", "MPI_CXX_COMPILER", "BLA_VENDOR", "Kokkos_ROOT",
                "RingAttn_MKL_ROOT"}


def project_cmake_options():
    """option() and cache variables of RingAttn's top-level CMakeLists.txt."""
    with open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8") as f:
        text = f.read()
    names = set(re.findall(r"^\s*option\(\s*(\w+)", text, re.M))
    names |= set(re.findall(r"^\s*set\(\s*(\w+)\s[^)]*\bCACHE\b", text, re.M))
    return names, text


class FakeKokkos:
    """What the recipe reads from the kokkos package object."""

    def __init__(self, spec):
        self.spec = spec

    @property
    def kokkos_cxx(self):
        if self.spec.variants.get("wrapper"):
            return "/opt/spack/kokkos-nvcc-wrapper/bin/nvcc_wrapper"
        return "/opt/spack/compiler/bin/g++"


def choices(kokkos_version="3.7.02", mpi="openmpi", kokkos_variants=None):
    """The dependencies a concretizer might pick, before the recipe's
    constraints: Spack's defaults for their variants."""
    kv = {"openmp": False, "serial": True, "cuda": False, "wrapper": False, "pic": False}
    kv.update(kokkos_variants or {})
    return {
        "kokkos": sp.Spec("kokkos", kokkos_version, kv),
        "mpi": sp.Spec(mpi, "5.0.5" if mpi == "openmpi" else "4.2.3", {}, provides=("mpi",)),
        "yaml-cpp": sp.Spec("yaml-cpp", "0.8.0", {"shared": True}),
        "openblas": sp.Spec("openblas", "0.3.28", {"shared": True}),
        "intel-oneapi-mkl": sp.Spec("intel-oneapi-mkl", "2025.2.0", {"shared": True}),
        "catch2": sp.Spec("catch2", "2.13.10", {}),
        "cmake": sp.Spec("cmake", "3.30.5", {}),
        "cuda": sp.Spec("cuda", "12.6.2", {}),
    }


def concretize(picks=None, **variants):
    root = sp.concretize(Ringattn, picks or choices(), **variants)
    if "kokkos" in root.deps:
        root["kokkos"].package = FakeKokkos(root["kokkos"])
    try:
        mpi = root["mpi"]
        mpi.mpicxx = os.path.join(mpi.prefix, "bin", "mpicxx")
    except KeyError:
        pass
    return root


def cmake_args(root):
    args = Ringattn(root).cmake_args()
    out = {}
    for a in args:
        m = re.fullmatch(r"-D(\w+):(BOOL|STRING|PATH)=(.*)", a)
        assert m, f"malformed CMake argument {a!r}"
        assert m.group(1) not in out, f"{m.group(1)} defined twice"
        out[m.group(1)] = m.group(3)
    return out


def combinations():
    """Every combination of the recipe's variants (blas exists only ~cuda,
    blas_provider only +blas)."""
    for mpi, openmp, tests in itertools.product([True, False], repeat=3):
        for provider in ("mkl", "openblas"):
            yield dict(mpi=mpi, openmp=openmp, tests=tests, blas=True, blas_provider=provider)
        yield dict(mpi=mpi, openmp=openmp, tests=tests, blas=False)
        for arch in ("80", "90"):
            yield dict(mpi=mpi, openmp=openmp, tests=tests, cuda=True, cuda_arch=arch)


def on(flag):
    return "ON" if flag else "OFF"


class RecipeStructure(unittest.TestCase):
    def test_build_systems(self):
        self.assertTrue(issubclass(Ringattn, sp.CMakePackage))
        self.assertTrue(issubclass(Ringattn, sp.CudaPackage))

    def test_variants_and_defaults(self):
        defs = Ringattn.variant_definitions()
        self.assertEqual(defs["mpi"]["default"], True)
        self.assertEqual(defs["openmp"]["default"], True)
        self.assertEqual(defs["tests"]["default"], False)
        self.assertEqual(defs["cuda"]["default"], False)
        self.assertEqual(defs["blas"]["when"], "~cuda")
        # one CUDA architecture, as Kokkos builds for one
        self.assertEqual(defs["cuda_arch"]["multi"], False)
        self.assertEqual(defs["cuda_arch"]["when"], "+cuda")
        self.assertEqual(set(defs["cuda_arch"]["values"]),
                         {"none"} | set(sp.CudaPackage.cuda_arch_values))

    def test_sources_are_this_checkout(self):
        git = Ringattn.git
        self.assertTrue(git.startswith("file://"), git)
        self.assertEqual(os.path.realpath(git[len("file://"):]), os.path.realpath(ROOT))
        with open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8") as f:
            self.assertIn("project(RingAttn", f.read())
        self.assertIn(("version", "main", {"branch": "main", "checksum": None}),
                      Ringattn.directives("version"))

    def test_dependency_constraints_name_real_variants(self):
        for _, text, _info in Ringattn.directives("depends_on"):
            c = sp.parse(text)[0]
            if c["name"] not in sp.BUILTIN:
                continue
            for key in c["variants"]:
                self.assertTrue(sp.known_variant(c["name"], key), f"{text}: {key}")


class CMakeArguments(unittest.TestCase):
    def test_every_variant_combination(self):
        options, _ = project_cmake_options()
        n = 0
        for variants in combinations():
            with self.subTest(**variants):
                root = concretize(**variants)
                args = cmake_args(root)
                cuda = variants.get("cuda", False)
                blas = variants.get("blas", False) and not cuda
                self.assertEqual(args["RingAttn_ENABLE_MPI"], on(variants["mpi"]))
                self.assertEqual(args["RingAttn_ENABLE_TESTS"], on(variants["tests"]))
                self.assertEqual(args["RingAttn_ENABLE_PERF_TESTS"], on(variants["tests"]))
                self.assertEqual(args["RingAttn_ENABLE_BLAS"], on(blas))
                self.assertEqual(args["RingAttn_ENABLE_DRIVER"], "ON")
                self.assertEqual(args["RingAttn_ENABLE_PACKAGING_TESTS"], "OFF")
                self.assertEqual(args["RingAttn_ENABLE_NATIVE"], "OFF")
                self.assertEqual(args["Kokkos_ROOT"], root["kokkos"].prefix)
                provider = variants.get("blas_provider") if blas else None
                self.assertEqual(args.get("BLA_VENDOR"), "OpenBLAS" if provider == "openblas" else None)
                self.assertEqual(args.get("RingAttn_BLAS_PROVIDER"),
                                 {"mkl": "MKL", "openblas": "OpenBLAS", None: None}[provider])
                if provider == "mkl":
                    self.assertEqual(args["RingAttn_MKL_ROOT"],
                                     os.path.join(root["intel-oneapi-mkl"].prefix, "mkl", "latest"))
                else:
                    self.assertNotIn("RingAttn_MKL_ROOT", args)
                if variants["mpi"]:
                    self.assertEqual(args["MPI_CXX_COMPILER"], root["mpi"].mpicxx)
                else:
                    self.assertNotIn("MPI_CXX_COMPILER", args)
                if cuda:
                    self.assertEqual(args["CMAKE_CXX_COMPILER"],
                                     root["kokkos"].package.kokkos_cxx)
                else:
                    self.assertNotIn("CMAKE_CXX_COMPILER", args)
                for name in args:
                    self.assertTrue(name in options or name in CMAKE_INPUTS,
                                    f"{name} is neither a RingAttn option nor a known input")
                n += 1
        self.assertEqual(n, 8 * 5)

    def test_cuda_uses_the_kokkos_compiler(self):
        picks = choices(kokkos_variants={"wrapper": True})
        args = cmake_args(concretize(picks, cuda=True, cuda_arch="80"))
        self.assertEqual(args["CMAKE_CXX_COMPILER"],
                         "/opt/spack/kokkos-nvcc-wrapper/bin/nvcc_wrapper")


class Dependencies(unittest.TestCase):
    def test_every_variant_combination(self):
        for variants in combinations():
            with self.subTest(**variants):
                root = concretize(**variants)
                kokkos = root["kokkos"]
                cuda = variants.get("cuda", False)
                self.assertIs(kokkos.variants["openmp"], variants["openmp"])
                self.assertIs(kokkos.variants["cuda"], cuda)
                if cuda:
                    self.assertEqual(kokkos.variants["cuda_arch"], variants["cuda_arch"])
                    self.assertIs(kokkos.variants["cuda_lambda"], True)
                names = set(root.deps)
                self.assertNotIn("kokkos-kernels", names)  # RingAttn does not use it
                self.assertIn("yaml-cpp", names)
                self.assertEqual("openmpi" in names, variants["mpi"])
                blas = variants.get("blas", False) and not cuda
                provider = variants.get("blas_provider")
                self.assertEqual("openblas" in names, blas and provider == "openblas")
                self.assertEqual("intel-oneapi-mkl" in names, blas and provider == "mkl")
                if blas and provider == "mkl":
                    self.assertIs(root["intel-oneapi-mkl"].variants["ilp64"], False)
                self.assertEqual("catch2" in names, variants["tests"])
                if variants["tests"]:
                    self.assertTrue(root["catch2"].satisfies("@2"))

    def test_every_cuda_arch_reaches_kokkos(self):
        for arch in sp.CudaPackage.cuda_arch_values:
            with self.subTest(arch=arch):
                root = concretize(cuda=True, cuda_arch=arch)
                self.assertTrue(root.satisfies(f"^kokkos+cuda cuda_arch={arch}"))

    def test_kokkos_versions_agree_with_cmake(self):
        """The recipe accepts exactly the Kokkos versions RingAttn's CMake can find."""
        _, text = project_cmake_options()
        m = re.search(r"find_package\(\s*Kokkos\s+(\d+)\.(\d+)", text)
        for version in ("3.4.01", "3.7.02", "4.0.00", "4.4.01", "4.7.02", "5.0.0"):
            v = tuple(int(x) for x in version.split("."))
            if m:  # Kokkos' version file: same major, at least the minor asked
                cmake_ok = v[0] == int(m.group(1)) and v[1] >= int(m.group(2))
            else:
                cmake_ok = v >= (3, 4)
            with self.subTest(kokkos=version, cmake_accepts=cmake_ok):
                try:
                    concretize(choices(kokkos_version=version))
                    recipe_ok = True
                except sp.Unsatisfiable:
                    recipe_ok = False
                self.assertEqual(recipe_ok, cmake_ok)


class ConflictsAndRequirements(unittest.TestCase):
    def test_cuda_needs_an_arch(self):
        with self.assertRaisesRegex(sp.Unsatisfiable, "cuda_arch"):
            concretize(cuda=True)

    def test_blas_is_a_host_variant(self):
        with self.assertRaisesRegex(sp.Unsatisfiable, "blas"):
            concretize(cuda=True, cuda_arch="80", blas=True)

    def test_variants_hold_both_ways(self):
        # Kokkos with OpenMP (CUDA) under ~openmp (~cuda) is refused, and the
        # other way round: the variants describe what the build runs on.
        picks = choices(kokkos_variants={"openmp": True})
        root = concretize(picks, openmp=False)
        self.assertIs(root["kokkos"].variants["openmp"], False)
        root = concretize(choices(kokkos_variants={"cuda": True}), cuda=False)
        self.assertIs(root["kokkos"].variants["cuda"], False)

    def test_mpi_tests_need_open_mpi(self):
        with self.assertRaisesRegex(sp.Unsatisfiable, "openmpi"):
            concretize(choices(mpi="mpich"), tests=True, mpi=True)
        concretize(choices(mpi="mpich"), tests=False, mpi=True)
        concretize(choices(mpi="mpich"), tests=True, mpi=False)

    def test_unknown_variant(self):
        with self.assertRaises(sp.Unsatisfiable):
            concretize(rocm=True)


class StandIn(unittest.TestCase):
    """The stand-in's own spec semantics that the checks above rely on."""

    def test_version_ranges(self):
        self.assertTrue(sp.version_satisfies("4.7.02", ":4"))
        self.assertFalse(sp.version_satisfies("5.0.0", ":4"))
        self.assertTrue(sp.version_satisfies("3.7.02", "3.4:3"))
        self.assertFalse(sp.version_satisfies("4.0.00", "3.4:3"))
        self.assertFalse(sp.version_satisfies("3.3.01", "3.4:3"))
        self.assertTrue(sp.version_satisfies("2.13.10", "2.13:2"))
        self.assertTrue(sp.version_satisfies("main", "3.4:"))

    def test_satisfies(self):
        s = sp.Spec("kokkos", "4.4.01", {"cuda": True, "cuda_arch": "80", "openmp": False})
        self.assertTrue(s.satisfies("kokkos@4:+cuda cuda_arch=80 ~openmp"))
        self.assertFalse(s.satisfies("+openmp"))
        self.assertFalse(s.satisfies("cuda_arch=90"))
        self.assertFalse(s.satisfies("+wrapper"))  # absent variant

    def test_define(self):
        self.assertEqual(sp.CMakePackage.define("A", True), "-DA:BOOL=ON")
        self.assertEqual(sp.CMakePackage.define("A", ["x", "y"]), "-DA:STRING=x;y")


if __name__ == "__main__":
    unittest.main(verbosity=2 if "-v" in sys.argv else 1)
