"""Turn a Python source file into a C header holding it as a string.
Usage: embed_py.py INPUT.py OUTPUT.h SYMBOL (run by meson at build time)."""
import sys

src, out, name = sys.argv[1:4]
text = open(src, encoding="utf-8").read()
with open(out, "w", encoding="utf-8") as f:
    f.write(f"/* generated from {src.split('/')[-1]} by scripts/embed_py.py: do not edit */\n")
    f.write(f"static const char {name}[] =\n")
    for line in text.splitlines(keepends=True):
        esc = line.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        f.write(f'\t"{esc}"\n')
    f.write(";\n")
