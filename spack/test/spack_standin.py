"""A small stand-in for the part of Spack's package API that the RingAttn
recipe uses, so that the recipe's logic can be tested with plain python3.

It is NOT Spack. It provides:

* the modules the recipe imports (``spack.package``,
  ``spack_repo.builtin.build_systems.cmake`` and ``...cuda``) with the
  directives ``version``, ``variant``, ``depends_on``, ``conflicts``,
  ``requires``, ``when`` and ``CMakePackage.define`` /
  ``define_from_variant`` as Spack documents them;
* concrete specs with ``satisfies()`` for the spec syntax the recipe uses
  (``name``, ``@range``, ``+v``, ``~v``, ``v=value``, ``^dependency``);
* ``concretize()``, a deliberately simple concretizer: the caller picks every
  dependency (version and starting variants); the recipe's ``depends_on``
  constraints that apply are then imposed on those choices until nothing
  changes, and any contradiction, unknown variant, ``conflicts`` or
  ``requires`` that fails raises ``Unsatisfiable``;
* ``BUILTIN``, a snapshot of the variants of the builtin packages the recipe
  depends on (from spack/spack-packages: kokkos, openblas,
  intel-oneapi-mkl,
  yaml-cpp, catch2, openmpi, mpich), so that a constraint naming a variant
  those packages do not have is caught.
"""

import contextlib
import importlib.util
import os
import re
import sys
import types

# ---------------------------------------------------------------- versions


def _parse_version(text):
    """'4.4.01' -> (4, 4, 1); branch names sort above every number."""
    if re.fullmatch(r"\d+(\.\d+)*", text):
        return tuple(int(x) for x in text.split("."))
    return (float("inf"),)


def version_satisfies(version, constraint):
    """Spack's version ranges: '3.4:' '3.4:3' ':4' '4' '4.4.01'. An upper bound
    takes in its whole series (4.7.02 satisfies ':4'), as does a single version."""
    v = _parse_version(version)
    if ":" not in constraint:
        c = _parse_version(constraint)
        return v[: len(c)] == c
    lo, hi = constraint.split(":", 1)
    if lo and v < _parse_version(lo):
        return False
    if hi:
        h = _parse_version(hi)
        if v[: len(h)] > h:
            return False
    return True


# ------------------------------------------------------------------- specs

_TOKEN = re.compile(
    r"\s*(?:(?P<dep>\^)|@(?P<ver>[\w.:]+)|\+(?P<on>\w+)|~(?P<off>\w+)"
    r"|(?P<key>\w+)=(?P<val>[\w.,]+)|(?P<name>[a-z][\w-]*))"
)


def parse(text):
    """'kokkos+cuda cuda_arch=80 ^mpi@4:' -> [root constraint, dep constraints...],
    each a dict: name, version, variants {name: value}."""
    parts = [{"name": None, "version": None, "variants": {}}]
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot parse spec {text!r} at {text[pos:]!r}")
        pos = m.end()
        cur = parts[-1]
        if m.group("dep"):
            parts.append({"name": None, "version": None, "variants": {}})
        elif m.group("ver"):
            cur["version"] = m.group("ver")
        elif m.group("on"):
            cur["variants"][m.group("on")] = True
        elif m.group("off"):
            cur["variants"][m.group("off")] = False
        elif m.group("key"):
            cur["variants"][m.group("key")] = m.group("val")
        else:
            if cur["name"] is not None:
                raise ValueError(f"two names in {text!r}")
            cur["name"] = m.group("name")
    return parts


class Spec:
    """A concrete spec: name, version, variant values, dependencies by name
    (a provider is also found under its virtual name)."""

    def __init__(self, name, version, variants=None, provides=(), prefix=None):
        self.name = name
        self.version = version
        self.variants = dict(variants or {})
        self.provides = tuple(provides)
        self.deps = {}
        self.prefix = prefix or f"/opt/spack/{name}-{version}"
        self.package = None

    def __getitem__(self, name):
        if name == self.name or name in self.provides:
            return self
        for dep in self.deps.values():
            if dep.name == name or name in dep.provides:
                return dep
        raise KeyError(name)

    def _matches(self, c):
        if c["name"] and c["name"] != self.name and c["name"] not in self.provides:
            return False
        if c["version"] and not version_satisfies(self.version, c["version"]):
            return False
        for key, want in c["variants"].items():
            if key not in self.variants:
                return False
            have = self.variants[key]
            if isinstance(want, bool):
                if have is not want:
                    return False
            elif isinstance(have, bool) or set(str(have).split(",")) != set(want.split(",")):
                return False
        return True

    def satisfies(self, text):
        root, *deps = parse(text)
        if not self._matches(root):
            return False
        for c in deps:
            try:
                dep = self[c["name"]]
            except KeyError:
                return False
            if not dep._matches(c):
                return False
        return True

    def __repr__(self):
        flags = "".join(
            (("+" if v else "~") + k) if isinstance(v, bool) else f" {k}={v}"
            for k, v in sorted(self.variants.items())
        )
        return f"{self.name}@{self.version}{flags}"


# -------------------------------------------------------------- directives

_pending = []  # directives met in the class body being defined
_when_stack = []


def _current_when(when):
    parts = list(_when_stack) + ([when] if when else [])
    return " ".join(parts) if parts else None


def version(ver, checksum=None, **kwargs):
    _pending.append(("version", ver, dict(kwargs, checksum=checksum)))


def variant(
    name,
    default=None,
    description="",
    values=None,
    multi=None,
    validator=None,
    when=None,
    sticky=False,
):
    _pending.append(
        (
            "variant",
            name,
            {
                "default": default,
                "description": description,
                "values": values,
                "multi": multi,
                "when": _current_when(when),
                "sticky": sticky,
            },
        )
    )


def depends_on(spec, when=None, type=("build", "link"), patches=None):
    _pending.append(("depends_on", spec, {"when": _current_when(when), "type": type}))


def conflicts(conflict_spec, when=None, msg=None):
    _pending.append(("conflicts", conflict_spec, {"when": _current_when(when), "msg": msg}))


def requires(*requirement_specs, policy="one_of", when=None, msg=None):
    for r in requirement_specs:
        _pending.append(("requires", r, {"when": _current_when(when), "msg": msg}))


@contextlib.contextmanager
def when(condition):
    _when_stack.append(condition)
    try:
        yield
    finally:
        _when_stack.pop()


def join_path(prefix, *args):
    return os.path.join(str(prefix), *args)


def maintainers(*names):
    pass


def license(license_identifier, checked_by=None, when=None):
    pass


class InstallError(Exception):
    pass


class PackageBase:
    """Records the directives of each class body; a class sees those of its
    bases too (a later definition of a variant replaces an earlier one)."""

    _own_directives = []

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._own_directives = list(_pending)
        _pending.clear()

    @classmethod
    def directives(cls, kind=None):
        out = []
        for klass in reversed(cls.__mro__):
            out.extend(klass.__dict__.get("_own_directives", []))
        return [d for d in out if kind is None or d[0] == kind]

    @classmethod
    def variant_definitions(cls):
        defs = {}
        for _, name, info in cls.directives("variant"):
            defs[name] = info  # a subclass redefinition wins
        return defs

    def __init__(self, spec):
        self.spec = spec
        spec.package = self

    def __getitem__(self, name):
        """self["kokkos"]: the package object of a dependency."""
        return self.spec[name].package


class CMakePackage(PackageBase):
    @staticmethod
    def define(cmake_var, value):
        """Spack's CMakeBuilder.define: -DVAR:BOOL=ON, -DVAR:STRING=a;b."""
        if isinstance(value, bool):
            kind, value = "BOOL", "ON" if value else "OFF"
        else:
            kind = "STRING"
            if isinstance(value, (list, tuple)):
                value = ";".join(str(v) for v in value)
        return f"-D{cmake_var}:{kind}={value}"

    def define_from_variant(self, cmake_var, variant=None):
        variant = variant or cmake_var.lower()
        if variant not in type(self).variant_definitions():
            raise KeyError(f'"{variant}" is not a variant of "{self.spec.name}"')
        if variant not in self.spec.variants:
            return ""
        return self.define(cmake_var, self.spec.variants[variant])

    def cmake_args(self):
        return []


# spack_repo.builtin.build_systems.cuda.CudaPackage (a subset of its values).
class CudaPackage(PackageBase):
    cuda_arch_values = (
        "50", "52", "53", "60", "61", "62", "70", "72", "75",
        "80", "86", "87", "89", "90", "90a", "100", "120",
    )  # fmt: skip
    variant("cuda", default=False, description="Build with CUDA")
    variant(
        "cuda_arch",
        description="CUDA architecture",
        values=("none",) + cuda_arch_values,
        default="none",
        multi=True,
        sticky=True,
        when="+cuda",
    )
    depends_on("cuda", when="+cuda")


# ------------------------------------------------- builtin packages' variants

# name -> {variant: condition under which it exists (None: always)}. From
# spack/spack-packages (repos/spack_repo/builtin/packages/*/package.py).
BUILTIN = {
    "kokkos": {
        "cuda": None,
        "openmp": None,
        "serial": None,
        "threads": None,
        "rocm": None,
        "sycl": None,
        "openmptarget": None,
        "cuda_lambda": "@:4 +cuda",
        "cuda_constexpr": "+cuda",
        "cuda_relocatable_device_code": "+cuda",
        "cuda_uvm": "@:4 +cuda",
        "cuda_arch": "+cuda",
        "wrapper": None,
        "cmake_lang": None,
        "pic": None,
        "shared": None,
        "cxxstd": None,
        "debug": None,
        "tests": None,
    },
    "openblas": {"shared": None, "pic": None, "ilp64": None, "fortran": None},
    "intel-oneapi-mkl": {
        "shared": None,
        "ilp64": None,
        "cluster": None,
        "gfortran": None,
        "envmods": None,
    },
    "yaml-cpp": {"shared": None, "pic": None, "tests": None},
    "catch2": {"shared": None, "pic": None, "cxxstd": None},
    "openmpi": {"cuda": None, "cxx": None, "fortran": None},
    "mpich": {"cuda": None, "fortran": None},
}


def known_variant(package, variant_name):
    return variant_name in BUILTIN.get(package, {})


# ------------------------------------------------------------ concretizing


class Unsatisfiable(Exception):
    pass


def _active(cls, root):
    """Root variants whose `when` holds, with their default values."""
    defs = cls.variant_definitions()
    changed = True
    while changed:
        changed = False
        for name, info in defs.items():
            active = info["when"] is None or root.satisfies(info["when"])
            if active and name not in root.variants:
                default = info["default"]
                root.variants[name] = default
                changed = True
            elif not active and name in root.variants:
                del root.variants[name]
                changed = True
    return root


def concretize(cls, choices, **root_variants):
    """The recipe's root spec with the variants given (others at their
    defaults) and dependencies `choices` (name -> Spec; a provider under its
    virtual name), constrained by the recipe; raises Unsatisfiable."""
    defs = cls.variant_definitions()
    for name, value in root_variants.items():
        if name not in defs:
            raise Unsatisfiable(f"{cls.__name__} has no variant {name}")
        values = defs[name]["values"]
        if values and not isinstance(value, bool) and value not in values:
            raise Unsatisfiable(f"{name}={value} is not one of {values}")
    root = Spec(cls.__name__.lower(), cls.directives("version")[0][1], root_variants)
    _active(cls, root)
    for name in root_variants:
        if name not in root.variants:
            raise Unsatisfiable(f"variant {name} does not exist under {root}")

    forced = {}  # (dep, variant) -> value some constraint imposed
    deps = {}
    changed = True
    while changed:
        changed = False
        for _, text, info in cls.directives("depends_on"):
            if info["when"] and not _holds(root, deps, info["when"]):
                continue
            c, *rest = parse(text)
            if rest:
                raise ValueError(f"depends_on({text!r}): '^' in a dependency")
            name = c["name"]
            if name in ("cxx", "c", "fortran"):
                continue  # compilers: Spack's business
            if name not in deps:
                if name not in choices:
                    raise Unsatisfiable(f"no choice given for dependency {name}")
                pick = choices[name]
                deps[name] = Spec(pick.name, pick.version, pick.variants, pick.provides,
                                  pick.prefix)
                changed = True
            dep = deps[name]
            if c["version"] and not version_satisfies(dep.version, c["version"]):
                raise Unsatisfiable(f"{dep} does not satisfy {name}@{c['version']}")
            for key, value in c["variants"].items():
                if dep.name in BUILTIN and not known_variant(dep.name, key):
                    raise Unsatisfiable(f"{dep.name} has no variant {key!r} ({text!r})")
                prior = forced.get((name, key))
                if prior is not None and prior != value:
                    raise Unsatisfiable(f"{name}: {key} must be both {prior} and {value}")
                forced[(name, key)] = value
                if dep.variants.get(key) != value:
                    dep.variants[key] = value
                    changed = True
    # conditional variants of the dependencies must exist where they are set
    for (name, key), _ in forced.items():
        dep = deps[name]
        cond = BUILTIN.get(dep.name, {}).get(key)
        if cond and not dep.satisfies(cond):
            raise Unsatisfiable(f"{dep}: variant {key} exists only for {cond}")
    for dep in deps.values():
        root.deps[dep.name] = dep
    for _, text, info in cls.directives("conflicts"):
        if (info["when"] is None or root.satisfies(info["when"])) and root.satisfies(text):
            raise Unsatisfiable(f"conflict {text} when {info['when']}: {info['msg']}")
    for _, text, info in cls.directives("requires"):
        if (info["when"] is None or root.satisfies(info["when"])) and not root.satisfies(text):
            raise Unsatisfiable(f"requires {text} when {info['when']}: {info['msg']}")
    return root


def _holds(root, deps, condition):
    """A `when` on the root; its ^dep parts hold only once that dep is chosen."""
    probe = Spec(root.name, root.version, root.variants, root.provides)
    probe.deps = dict(deps)
    return probe.satisfies(condition)


# ------------------------------------------------------------------ loading


def install_modules():
    """Registers the stand-in under the module names the recipe imports."""
    api = types.ModuleType("spack.package")
    names = [
        "version", "variant", "depends_on", "conflicts", "requires", "when",
        "maintainers", "license", "InstallError", "join_path",
    ]  # fmt: skip
    for n in names:
        setattr(api, n, globals()[n])
    api.__all__ = names
    spack = types.ModuleType("spack")
    spack.package = api
    cmake = types.ModuleType("spack_repo.builtin.build_systems.cmake")
    cmake.CMakePackage = CMakePackage
    cuda = types.ModuleType("spack_repo.builtin.build_systems.cuda")
    cuda.CudaPackage = CudaPackage
    modules = {
        "spack": spack,
        "spack.package": api,
        "spack_repo": types.ModuleType("spack_repo"),
        "spack_repo.builtin": types.ModuleType("spack_repo.builtin"),
        "spack_repo.builtin.build_systems": types.ModuleType("spack_repo.builtin.build_systems"),
        "spack_repo.builtin.build_systems.cmake": cmake,
        "spack_repo.builtin.build_systems.cuda": cuda,
    }
    sys.modules.update(modules)


def load_recipe(path, class_name):
    install_modules()
    spec = importlib.util.spec_from_file_location("ringattn_recipe_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, getattr(module, class_name)
