#!/usr/bin/env bash
# Build the one-folder desktop bundle, then start it offscreen and time it.
#   packaging/build.sh            # -> packaging/dist/edgetune/edgetune
# Uses the active environment's torch: CPU torch gives a CPU bundle, CUDA torch a CUDA one.
# Needs: pip install pyinstaller (not part of edgetune's dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m PyInstaller --noconfirm --clean packaging/edgetune.spec \
    --distpath packaging/dist --workpath packaging/build
bundle=packaging/dist/edgetune
# A desktop entry and icon beside the executable; install with:
#   cp packaging/dist/edgetune/edgetune.desktop ~/.local/share/applications/
#   cp packaging/dist/edgetune/edgetune.svg ~/.local/share/icons/hicolor/scalable/apps/
sed "s|^Exec=edgetune|Exec=$(cd "$bundle" && pwd)/edgetune|" packaging/edgetune.desktop > "$bundle/edgetune.desktop"
cp app/resources/edgetune.svg "$bundle/edgetune.svg"
echo "bundle: $bundle ($(du -sh "$bundle" | cut -f1))"
# Smoke test: the engine inside the bundle answers, and the window comes up offscreen.
"$bundle/edgetune" engine --version
start=$(date +%s.%N)
QT_QPA_PLATFORM=offscreen "$bundle/edgetune" --check
end=$(date +%s.%N)
echo "start-up (process start to window shown and closed): $(echo "$end - $start" | bc) s"
