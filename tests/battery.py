"""The rule every bad input must meet, checked in-process (test helper for the reliability battery).

A refused command must: exit with status 2, print at most two lines on
stderr, print no traceback, and leave the disk as it found it (nothing
created, changed or removed under the folder it ran in and the folders the
test names). `refuse(argv, cwd, watch=...)` runs `kerascnn.cli.app.main`
in this process (no interpreter start-up per case, so hundreds of generated
cases fit the suite's time budget) and returns the stderr text after checking
the rule; `Tally` counts the cases per command for the closing report.
"""

import collections
import contextlib
import hashlib
import io
import os
import pathlib
import sys


def disk_state(*roots):
    """{path: (kind, size, mtime_ns, sha1 of small files)} of everything under `roots`."""
    state = {}
    for root in roots:
        root = pathlib.Path(root)
        if not root.exists() and not root.is_symlink():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames:
                state[os.path.join(dirpath, name)] = ("dir",)
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                digest = None
                if st.st_size <= 1 << 20:
                    try:
                        with open(path, "rb") as f:
                            digest = hashlib.sha1(f.read()).hexdigest()
                    except OSError:
                        digest = "unreadable"
                state[path] = ("file", st.st_size, st.st_mtime_ns, digest, st.st_mode)
        state[str(root)] = ("root", os.lstat(root).st_mode)
    return state


def describe_change(before, after):
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(p for p in set(before) & set(after) if before[p] != after[p])
    return f"added {added[:5]}, removed {removed[:5]}, changed {changed[:5]}"


@contextlib.contextmanager
def working_directory(path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def run_in_process(argv, cwd):
    """(exit status, stdout, stderr) of `kerascnn argv` run by `kerascnn.cli.app.main` in `cwd`."""
    from kerascnn.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    with working_directory(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:  # argparse exits by itself for --help; never for a bad flag
            code = e.code
        except BaseException as e:  # a traceback the user would see: report it as one
            import traceback

            code = "traceback"
            err.write("Traceback (most recent call last):\n" + "".join(traceback.format_exception(e)))
    return code, out.getvalue(), err.getvalue()


def check_refusal(argv, code, stderr, before, after):
    """Assert the rule on a finished case; the message names the command line."""
    case = " ".join(map(str, argv))
    assert "Traceback" not in stderr, f"{case}: traceback\n{stderr[-3000:]}"
    assert code == 2, f"{case}: exit status {code!r}, stderr: {stderr[-1000:]}"
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, f"{case}: {len(lines)} lines on stderr: {stderr[-1000:]}"
    assert before == after, f"{case}: the disk changed: {describe_change(before, after)}"


def refuse(argv, cwd, watch=()):
    """Run `kerascnn argv` in `cwd`, assert the rule, and return its stderr."""
    before = disk_state(cwd, *watch)
    code, _, stderr = run_in_process(argv, cwd)
    after = disk_state(cwd, *watch)
    check_refusal(argv, code, stderr, before, after)
    return stderr


def leftovers(*folders):
    """Temporary files and staging folders a writer leaves while it works (`kerascnn.storage.atomic`)."""
    found = []
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            for name in dirnames + filenames:
                if ".partial-" in name or ".tmp-" in name or name.endswith(".tmp"):
                    found.append(os.path.join(dirpath, name))
    return found


class Tally:
    """Cases tried per command, printed at the end of a battery (`pytest -s` shows it)."""

    def __init__(self, title):
        self.title = title
        self.counts = collections.Counter()

    def add(self, command, n=1):
        self.counts[command] += n

    def report(self):
        total = sum(self.counts.values())
        parts = ", ".join(f"{cmd} {n}" for cmd, n in sorted(self.counts.items()))
        line = f"{self.title}: {total} cases, all clean ({parts})"
        print(line, file=sys.__stdout__)
        return line
