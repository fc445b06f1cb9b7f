package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeClient is a stand-in for `mariadb --batch`: it answers SHOW GLOBAL STATUS with fixed counters,
// echoes the end marker, and exits on the statement "QUIT".
const fakeClient = `#!/bin/sh
while IFS= read -r line; do
  case "$line" in
    *SHOW\ GLOBAL\ STATUS*) printf 'Max_used_connections\t130\nThreads_connected\t2\n' ;;
    *QUIT*) echo "ERROR 2013: lost" >&2; exit 1 ;;
    *__sweep_end_of_answer__*) echo __sweep_end_of_answer__ ;;
    *) : ;;
  esac
done
`

func TestSessionStatus(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "fake-mariadb")
	if err := os.WriteFile(bin, []byte(fakeClient), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := startSession(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	ctx := context.Background()
	tests := []struct {
		names   []string
		want    []int64
		wantErr string
	}{
		{[]string{"Threads_connected"}, []int64{2}, ""},
		{[]string{"max_used_connections", "Threads_connected"}, []int64{130, 2}, ""},
		{[]string{"Uptime"}, nil, "Uptime missing"},
	}
	for _, tc := range tests {
		got, err := s.status(ctx, "FLUSH STATUS; ", tc.names...)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("status(%v) err = %v, want %q", tc.names, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) || got[0] != tc.want[0] || got[len(got)-1] != tc.want[len(tc.want)-1] {
			t.Errorf("status(%v) = %v, %v; want %v", tc.names, got, err, tc.want)
		}
	}
	if _, err := s.query(ctx, "QUIT"); err == nil || !strings.Contains(err.Error(), "ERROR 2013") {
		t.Errorf("a client that died answered %v; want its stderr in the error", err)
	}
}
