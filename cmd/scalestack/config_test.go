package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestApplyConfigFile(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		args    []string
		wantErr string // substring; empty means success
		check   func(t *testing.T, listen string, loops int, timeout time.Duration, cpus string)
	}{
		{
			name: "values of every kind",
			file: "listen = \"127.0.0.1:9\"\nloops = 3\nshutdown-timeout = \"7s\"\ncpus = [0, 2]\n",
			check: func(t *testing.T, listen string, loops int, timeout time.Duration, cpus string) {
				if listen != "127.0.0.1:9" || loops != 3 || timeout != 7*time.Second || cpus != "0,2" {
					t.Errorf("got listen=%q loops=%d timeout=%v cpus=%q", listen, loops, timeout, cpus)
				}
			},
		},
		{
			name: "command line wins",
			file: "loops = 3\n",
			args: []string{"--loops", "5"},
			check: func(t *testing.T, _ string, loops int, _ time.Duration, _ string) {
				if loops != 5 {
					t.Errorf("loops = %d, want the command line's 5", loops)
				}
			},
		},
		{name: "unknown key with line and suggestion", file: "# comment\nlisten = \"x:1\"\nloop = 2\n", wantErr: `:3: unknown setting "loop" (did you mean "loops"?)`},
		{name: "bad value with line", file: "\n\nloops = \"many\"\n", wantErr: `:3: loops = "many"`},
		{name: "syntax error with line", file: "listen = \"a\"\nloops = = 2\n", wantErr: ":2:"},
		{name: "tables are refused", file: "[backend]\nhost = \"x\"\n", wantErr: "tables are not settings"},
		{name: "config cannot nest", file: "config = \"other.toml\"\n", wantErr: `unknown setting "config"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, ef, _ := echoFlags(io.Discard)
			path := writeConfig(t, tt.file)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := applyConfigFile(fs, path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name the file", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, fs.Lookup("listen").Value.String(), ef.loops, ef.shutdownTimeout, ef.cpus)
		})
	}
}

func TestCheckConfigCommand(t *testing.T) {
	good := writeConfig(t, "listen = \"127.0.0.1:7000\"\nio = \"epoll\"\n")
	bad := writeConfig(t, "listen = \"127.0.0.1:7000\"\nio = \"kqueue\"\n")
	var out, errb bytes.Buffer
	if code := run([]string{"check-config", "--command", "echo", good}, &out, &errb); code != 0 || !strings.Contains(out.String(), "ok") {
		t.Fatalf("good config: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"check-config", "--command", "echo", bad}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "kqueue") {
		t.Fatalf("bad config: exit %d, stderr %q; want a failure naming the bad driver", code, errb.String())
	}
}

func TestHelpExitsZero(t *testing.T) {
	for _, name := range []string{"echo", "tcpproxy", "check-config"} {
		var out, errb bytes.Buffer
		if code := run([]string{name, "--help"}, &out, &errb); code != 0 {
			t.Errorf("%s --help: exit %d", name, code)
		}
		if !strings.Contains(errb.String(), "Usage: scalestack "+name) {
			t.Errorf("%s --help printed %q", name, errb.String())
		}
	}
}
