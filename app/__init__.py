"""edgetune desktop app: a PySide6 wizard over the headless engine.

The app never trains in its own process: long jobs run as `engine ... --events -`
child processes (see engine_process.py), so Cancel really stops them and frees
their memory, and every action can be repeated in a terminal. engine/ and
exporters/ never import anything from here.
"""
