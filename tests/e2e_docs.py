"""e2e_docs: the API reference builds from the public headers with no
warning, so every public function, type and macro is documented.

Runs doxygen with the build's Doxyfile (WARN_AS_ERROR = FAIL_ON_WARNINGS), as
`make docs` does, then proves that the check bites: the same configuration
over a copy of the headers with one undocumented function added must fail
and name it. doxygen missing is a failure, not a skip: CI installs it
(.ci/run) and the README lists it."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402

args = sbtest.parse_args()
doxygen = shutil.which("doxygen")
if doxygen is None:
    print("FAIL: doxygen is not installed (apt-get install doxygen); the API reference "
          "check cannot run")
    sys.exit(1)
doxyfile = os.path.join(args.build, "Doxyfile")
if not os.path.exists(doxyfile):
    print("FAIL: %s missing (CMake writes it from Doxyfile.in)" % doxyfile)
    sys.exit(1)
config = open(doxyfile).read()
failures = 0


def run_doxygen(extra, cwd):
    return subprocess.run([doxygen, "-"], input=config + "\n" + extra, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


with tempfile.TemporaryDirectory(prefix="sb-docs-") as tmp:
    r = run_doxygen("OUTPUT_DIRECTORY = %s/out\n" % tmp, args.src)
    warnings = (r.stdout + r.stderr).strip()
    if r.returncode != 0 or warnings:
        failures += 1
        print("FAIL: doxygen over include/ - every warning is an error:\n" + warnings)
    elif not os.path.exists(os.path.join(tmp, "out", "html", "index.html")):
        failures += 1
        print("FAIL: doxygen wrote no html/index.html")
    else:
        print("ok: doxygen builds the API reference with no warning")

    # The check bites: one undocumented public function fails the run.
    inc = os.path.join(tmp, "include")
    shutil.copytree(os.path.join(args.src, "include"), inc)
    gen = os.path.join(args.build, "include", "switchboard", "version.h")
    shutil.copy(gen, os.path.join(inc, "switchboard", "version.h"))
    with open(os.path.join(inc, "switchboard", "buf.h")) as f:
        text = f.read()
    marker = "#ifdef __cplusplus\n}\n#endif"
    text = text.replace(marker, "int sb_buf_undocumented_probe(int x);\n\n" + marker, 1)
    with open(os.path.join(inc, "switchboard", "buf.h"), "w") as f:
        f.write(text)
    r = run_doxygen("INPUT = %s\nSTRIP_FROM_PATH = %s\nOUTPUT_DIRECTORY = %s/out2\n" % (inc, inc, tmp), tmp)
    out = r.stdout + r.stderr
    if r.returncode != 0 and "sb_buf_undocumented_probe" in out:
        print("ok: an undocumented public function fails the run and is named")
    else:
        failures += 1
        print("FAIL: an undocumented function passed (rc %d): %s" % (r.returncode, out[-2000:]))

sys.exit(1 if failures else 0)
