"""e2e_man: the manual pages and the bash completion.

- switchboard.1 and libswitchboard.3 (man/*.in, generated into the build
  directory) render with man -l and groff -ww without a warning, and carry
  the project's version;
- every option that `switchboard CMD --help` lists, for every subcommand
  `switchboard --help` lists, appears in switchboard.1 (so a new option
  without its man entry fails here), and so does every subcommand;
- every public function of include/ is named in libswitchboard.3;
- completion/switchboard.bash, sourced in bash, completes `switchboard se`
  to serve and send, `switchboard serve --ap` to --app, and the values of
  --app.
man, groff and bash missing are failures, not skips: CI installs them."""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbtest  # noqa: E402

args = sbtest.parse_args()
failures = 0


def check(cond, what, detail=""):
    global failures
    if cond:
        print("ok:", what)
    else:
        failures += 1
        print("FAIL:", what, ("- " + detail) if detail else "")
    return cond


for tool in ("man", "groff", "bash"):
    if shutil.which(tool) is None:
        print("FAIL: %s is not installed (apt-get install man-db groff-base bash)" % tool)
        sys.exit(1)

# The pages as built (man/*.in with the version filled in by CMake).
page1 = os.path.join(args.build, "man", "switchboard.1")
page3 = os.path.join(args.build, "man", "libswitchboard.3")
env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
rendered = {}
for page in (page1, page3):
    name = os.path.basename(page)
    r = subprocess.run(["groff", "-t", "-man", "-ww", "-z", "-Tutf8", page], capture_output=True,
                       text=True, env=env, timeout=30)
    check(r.returncode == 0 and r.stderr == "", "groff -ww renders %s without warnings" % name, r.stderr[:2000])
    r = subprocess.run(["man", "-l", "-Tutf8", page], capture_output=True, text=True, env=env, timeout=30)
    check(r.returncode == 0 and r.stderr == "" and len(r.stdout) > 1000, "man -l renders %s" % name,
          r.stderr[:2000])
    # Plain text: no overstrike, no hyphenation, no soft hyphen breaks.
    r = subprocess.run(["groff", "-t", "-man", "-Tutf8", "-P", "-cbou", "-rHY=0", "-rLL=200n", page],
                       capture_output=True, text=True, env=env, timeout=30)
    rendered[name] = r.stdout.replace("\u2010", "-").replace("\u2212", "-")


def help_text(*cmd):
    r = subprocess.run([args.bin] + list(cmd) + ["--help"], capture_output=True, text=True, timeout=10)
    return r.stdout + r.stderr


def options_of(text):
    """Every option a --help lists: the spellings at the start of its option
    lines ("  -o, --output FILE   text", "  --json   text")."""
    opts = []
    for line in text.splitlines():
        m = re.match(r"^\s+(-[^\s].*?)(?:\s{2,}|$)", line)
        if not m:
            continue
        for alt in m.group(1).split(","):
            w = alt.strip().split()
            if w and re.match(r"^--?[A-Za-z0-9][-A-Za-z0-9]*$", w[0]):
                opts.append(w[0])
    return opts


top = help_text()
commands = []
on = False
for line in top.splitlines():
    if line.startswith("commands:"):
        on = True
        continue
    if on:
        m = re.match(r"^\s+([a-z][a-z0-9-]*)\s", line)
        if not m:
            break
        commands.append(m.group(1))
check(len(commands) >= 4, "switchboard --help lists its commands: %s" % " ".join(commands))
man1 = rendered["switchboard.1"]
for cmd in commands:
    check(re.search(r"switchboard %s\b" % re.escape(cmd), man1) is not None,
          "switchboard.1 has a section for `%s`" % cmd)
    opts = options_of(help_text(cmd))
    check(len(opts) > 0, "`switchboard %s --help` lists options" % cmd)
    missing = [o for o in opts if not re.search(r"(?<![-\w])%s(?![-\w])" % re.escape(o), man1)]
    check(not missing, "switchboard.1 names every option of `%s --help` (%d)" % (cmd, len(opts)),
          "missing: " + " ".join(missing))
for o in options_of(top):
    check(re.search(r"(?<![-\w])%s(?![-\w])" % re.escape(o), man1) is not None,
          "switchboard.1 names the top-level %s" % o)
version = subprocess.run([args.bin, "--version"], capture_output=True, text=True).stdout.split()[-1]
for name, text in rendered.items():
    check("switchboard " + version in text, "%s says switchboard %s" % (name, version))
for sec in ("EXIT STATUS", "EXAMPLES", "ENVIRONMENT"):
    check(sec in man1, "switchboard.1 has %s" % sec)

# libswitchboard.3 names every public function.
man3 = rendered["libswitchboard.3"]
funcs = set()
inc = os.path.join(args.src, "include")
for d, _, files in os.walk(inc):
    for f in files:
        if f.endswith(".h") or f.endswith(".h.in"):
            text = re.sub(r"/\*.*?\*/", "", open(os.path.join(d, f)).read(), flags=re.S)
            funcs.update(re.findall(r"\b(sb_[a-z0-9_]+)\s*\(", text))
funcs = {f for f in funcs if not f.endswith("_cb") and not f.endswith("_fn")}
missing = sorted(f for f in funcs if not re.search(r"\b%s\b" % f, man3))
check(len(funcs) > 50 and not missing, "libswitchboard.3 names every public function (%d)" % len(funcs),
      "missing: " + " ".join(missing))

# Completion: the function the script registers, driven as bash would.
script = os.path.join(args.src, "completion", "switchboard.bash")
probe = r'''
source "$1" || exit 3
complete -p switchboard >/dev/null || exit 4
c() { COMP_WORDS=("$BIN" "$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMPREPLY=(); _switchboard;
      echo "$*|${COMPREPLY[*]}"; }
c se
c serve --ap
c serve --app ""
c bench --con
c ""
'''
r = subprocess.run(["bash", "--norc", "--noprofile", "-c", probe, "probe", script], capture_output=True,
                   text=True, env=dict(os.environ, BIN=args.bin), timeout=30)
got = dict(line.split("|", 1) for line in r.stdout.splitlines() if "|" in line)
check(r.returncode == 0, "the completion script sources and registers _switchboard", r.stderr[:500])
check(sorted(got.get("se", "").split()) == ["send", "serve"], "switchboard se<TAB> -> send serve",
      repr(got.get("se")))
check(got.get("serve --ap", "").split() == ["--app"], "switchboard serve --ap<TAB> -> --app",
      repr(got.get("serve --ap")))
check(sorted(got.get("serve --app ", "").split()) == ["chat", "echo", "http"],
      "switchboard serve --app <TAB> -> echo chat http", repr(got.get("serve --app ")))
check(set(got.get("bench --con", "").split()) >= {"--conns", "--connect-only"},
      "switchboard bench --con<TAB> -> --conns --connect-only", repr(got.get("bench --con")))
check(sorted(got.get("", "").split()) == sorted(commands), "switchboard <TAB> -> every command",
      repr(got.get("")))

sys.exit(1 if failures else 0)
