package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// logLevel can be changed at run time (live reload) without rebuilding the
// logger.
var logLevel = new(slog.LevelVar)

// logger writes one line per event; nothing is logged per statement at info.
var logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))

func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q (want debug, info, warn or error)", s)
}
