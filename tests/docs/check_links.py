#!/usr/bin/python3
"""Link check of the user docs: every file or folder that README.md and
docs/**/*.md cite must exist in the project, and nothing in the project
cites the developers' specifications outside it.

What counts as a citation (the rule):
1. Markdown links [text](target), except URLs (scheme://, mailto:) and
   in-page anchors (#...): the target, without its #anchor, relative to the
   citing file.
2. Inline code spans (`...`) and fenced code blocks: each word (split at
   white space, '=', quotes and brackets) that is a project path:
   - it starts with a top-level entry of the project (nn/, docs/, README.md,
     Makefile, ...), or with ./ or ../ (then it is relative to the citing
     file and must stay inside the project): it must exist, or be a build
     output, a target or output name that the meson.build of its folder
     makes (pipelines/embed-example). Braces expand
     (gst/earlyexit-meta.{c,h}) and a glob (*) must match something.
   - it starts with build/ (a build folder, as the docs write it):
     build/DIR/NAME must be as above for DIR/NAME; build/DIR must be a
     project folder or a folder that a script in scripts/ writes into the
     build folder ("$build/DIR", as scripts/demo.sh writes demo/).
   Plain text (outside code and links) is held to the first of these: a word
   that starts with a top-level folder of the project and a '/'
   (docs/engine.md, tests/gst/meson.build) must exist or be made there.
3. Inline code spans only: a bare file name (no '/') ending in one of
   EXTENSIONS must be the name of a file somewhere in the project, or a name
   that the project's code writes (a quoted literal "NAME" or 'NAME' in a
   .py/.c/.sh file: truth.json), or one of EXTERNAL (named upstream files,
   each with its reason). Fenced blocks hold commands with stand-in names
   such as clip.wav, so their bare names are not checked; nor are absolute
   paths, which are not the project's.
4. Not only the docs: no file of the project (sources, scripts, meson files,
   docs; not .git, build folders, .ci or this folder) names the developers'
   specifications kept outside it (SPEC_NAMES: MODELS.md, ARCHITECTURE.md,
   STYLE.md, ../shared/, docs/background/); code comments cite docs/models.md
   and docs/architecture.md instead.
A ":LINE" suffix (gstavcrowdcount.c:1668) is ignored.

Usage: check_links.py [--root DIR]   (default: the project holding this file)
Exits 1 listing every citation that does not resolve, as FILE:LINE: CITED.
"""
import argparse
import fnmatch
import glob
import os
import re
import sys

EXTENSIONS = (".md", ".c", ".h", ".py", ".json", ".safetensors", ".sh", ".cu",
              ".supp", ".txt", ".build", ".npy", ".dict")
SKIP_DIRS = {".git", "__pycache__"}
# Upstream files the docs name as the origin of a recipe (not the project's).
EXTERNAL = {
    "mel_features.py": "Google AudioSet's VGGish log-mel code, the recipe "
                       "docs/features.md follows",
}
SPEC_NAMES = re.compile(r"\b(MODELS|ARCHITECTURE|STYLE)\.md\b|\.\./shared/|docs/background/")
SPEC_SKIP = {".ci", os.path.join("tests", "docs")}  # the CI harness; this checker
TEXT_EXT = (".c", ".h", ".cu", ".cuh", ".py", ".sh", ".build", ".txt", ".md", ".json",
            ".supp", ".dict")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
SPLIT = re.compile(r"[\s=\"'()\[\]<>;|]+")
LINE_SUFFIX = re.compile(r":\d+(-\d+)?$")


def project_files(root):
    """Every file and folder of the project (no build folders), relative."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS
                       and not (rel == "." and d.startswith("build"))]
        for name in dirnames + filenames:
            out.add(os.path.normpath(os.path.join(rel, name)))
    return out


def expand_braces(word):
    m = re.search(r"\{([^{}]*)\}", word)
    if not m:
        return [word]
    out = []
    for alt in m.group(1).split(","):
        out += expand_braces(word[:m.start()] + alt + word[m.end():])
    return out


class Checker:
    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.files = project_files(self.root)
        self.basenames = {os.path.basename(f) for f in self.files}
        self.top = {f for f in self.files if os.sep not in f}
        self.code_text = ""
        for f in self.files:
            if f.endswith((".py", ".c", ".sh")) and os.path.isfile(os.path.join(self.root, f)):
                with open(os.path.join(self.root, f), encoding="utf-8", errors="replace") as fh:
                    self.code_text += fh.read()
        self.errors = []

    def written(self, name):
        """A quoted literal of the project's code: a file name it writes."""
        return f'"{name}"' in self.code_text or f"'{name}'" in self.code_text

    def script_build_dir(self, folder):
        """A folder a script of scripts/ writes into the build folder."""
        scripts = os.path.join(self.root, "scripts")
        for name in os.listdir(scripts) if os.path.isdir(scripts) else []:
            with open(os.path.join(scripts, name), encoding="utf-8", errors="replace") as f:
                if re.search(r"\$\{?build\}?/" + re.escape(folder) + r"\b", f.read()):
                    return True
        return False

    def exists(self, rel):
        rel = os.path.normpath(rel)
        if rel.startswith(".."):
            return False
        if any(c in rel for c in "*?"):
            return any(fnmatch.fnmatch(f, rel) for f in self.files)
        return rel in self.files or rel == "."

    def made(self, rel):
        """A project path, or a name the meson.build of its folder makes."""
        rel = os.path.normpath(rel.rstrip("/"))
        if rel.startswith(".."):
            return False  # outside the project
        if self.exists(rel):
            return True
        folder, _, name = rel.rpartition("/")
        mb = os.path.join(self.root, folder, "meson.build")
        if not name or not os.path.isfile(mb):
            return False
        with open(mb, encoding="utf-8") as f:
            text = f.read()
        stem = name[:-len(".safetensors")] if name.endswith(".safetensors") else name
        return f"'{name}'" in text or f"'{stem}'" in text

    def built(self, rest):
        """build/<rest>."""
        rest = rest.rstrip("/")
        if not rest:
            return True
        first = rest.split("/")[0]
        if first not in self.top:
            return self.script_build_dir(first)
        return self.made(rest)

    def cite(self, doc, lineno, word, code, fenced):
        word = word.strip().rstrip(".,:;")
        word = LINE_SUFFIX.sub("", word)
        if not word or "://" in word or word.startswith(("/", "~", "$", "-")):
            return
        for w in expand_braces(word):
            first = w.split("/")[0]
            if w.startswith(("./", "../")):
                target = os.path.relpath(os.path.normpath(os.path.join(os.path.dirname(doc), w)))
                ok = self.made(target)
            elif first == "build" and "/" in w:
                ok = self.built(w[len("build/"):])
            elif first in self.top and ("/" in w or first == w):
                ok = self.made(w)
            elif code and not fenced and "/" not in w and w.endswith(EXTENSIONS) \
                    and re.fullmatch(r"[\w+-][\w.+-]*", w):
                ok = w in self.basenames or w in EXTERNAL or self.written(w)
            else:
                continue
            if not ok:
                self.errors.append(f"{doc}:{lineno}: {w}")

    def check_doc(self, doc):
        path = os.path.join(self.root, doc)
        fenced = False
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.lstrip().startswith(("```", "~~~")):
                    fenced = not fenced
                    continue
                if fenced:
                    for w in SPLIT.split(line):
                        self.cite(doc, lineno, w, True, True)
                    continue
                for m in LINK.finditer(line):
                    target = (m.group(1) or m.group(2)).split("#")[0]
                    if not target or re.match(r"^[a-z]+:", target):
                        continue
                    rel = os.path.relpath(os.path.normpath(
                        os.path.join(os.path.dirname(doc), target)))
                    if not self.exists(rel):
                        self.errors.append(f"{doc}:{lineno}: {target}")
                for m in CODE_SPAN.finditer(line):
                    for w in SPLIT.split(m.group(2)):
                        self.cite(doc, lineno, w, True, False)
                prose = CODE_SPAN.sub(" ", LINK.sub(" ", line))
                for w in SPLIT.split(prose):
                    w = w.strip(".,:;*_`")  # a code span broken over two lines
                    first = w.split("/")[0]
                    if "/" in w and first in self.top and \
                            os.path.isdir(os.path.join(self.root, first)):
                        self.cite(doc, lineno, w, False, False)

    def check_spec_citations(self):
        """Rule 4: no file of the project names the specs outside it."""
        for f in sorted(self.files):
            if any(f == d or f.startswith(d + os.sep) for d in SPEC_SKIP):
                continue
            name = os.path.basename(f)
            if not (f.endswith(TEXT_EXT) or name in ("Makefile", "meson_options.txt")):
                continue
            path = os.path.join(self.root, f)
            if not os.path.isfile(path):
                continue
            with open(path, encoding="utf-8", errors="replace") as fh:
                for lineno, line in enumerate(fh, 1):
                    m = SPEC_NAMES.search(line)
                    if m:
                        self.errors.append(f"{f}:{lineno}: {m.group(0)} (outside the project)")

    def docs(self):
        out = ["README.md"] if os.path.isfile(os.path.join(self.root, "README.md")) else []
        out += sorted(os.path.relpath(p, self.root) for p in glob.glob(
            os.path.join(self.root, "docs", "**", "*.md"), recursive=True))
        return out


def main():
    ap = argparse.ArgumentParser(description="Link check of README.md and docs/")
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "..", ".."))
    args = ap.parse_args()
    checker = Checker(args.root)
    docs = checker.docs()
    if not docs:
        sys.exit(f"check_links: no README.md or docs/*.md under {checker.root}")
    for doc in docs:
        checker.check_doc(doc)
    checker.check_spec_citations()
    if checker.errors:
        print("check_links: cited but not in the project:", file=sys.stderr)
        for e in checker.errors:
            print("  " + e, file=sys.stderr)
        sys.exit(1)
    print(f"check_links: {len(docs)} documents, every cited path exists; "
          "no file names the specifications outside the project")


if __name__ == "__main__":
    main()
