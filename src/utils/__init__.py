"""What the entry points share: config checks (`config`), composing a config and loading a run (`runs`), run
folders and their identity (`run_folder`), sweeps that survive a failing job (`sweeps`), loggers (`loggers`),
progress reporting (`progress`) and atomic file writes (`files`)."""
