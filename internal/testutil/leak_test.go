package testutil

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// recordingTB lets a test run CheckLeaks against a stand-in testing.TB: failures are recorded and
// cleanups collected instead of failing or running the real test.
type recordingTB struct {
	testing.TB
	errors   []string
	cleanups []func()
}

func (r *recordingTB) Helper()          {}
func (r *recordingTB) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recordingTB) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recordingTB) finish() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func TestCheckLeaks(t *testing.T) {
	// Each deliberate leak is only reported once the whole window has passed; a shorter one keeps the
	// test quick while still outlasting the late close below.
	defer func(w time.Duration) { leakWindow = w }(leakWindow)
	leakWindow = time.Second
	tests := []struct {
		name string
		// leak does something during the "test" and returns what the real test must undo afterwards.
		leak     func(t *testing.T) (undo func())
		wantLeak string // substring of the reported failure; "" means none
	}{
		{
			name:     "nothing leaked",
			leak:     func(*testing.T) func() { return func() {} },
			wantLeak: "",
		},
		{
			name: "file closed and goroutine finished",
			leak: func(t *testing.T) func() {
				f := openDevNull(t)
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
				done := make(chan struct{})
				go func() { close(done) }()
				<-done
				return func() {}
			},
			wantLeak: "",
		},
		{
			name: "file left open",
			leak: func(t *testing.T) func() {
				f := openDevNull(t)
				return func() { _ = f.Close() }
			},
			wantLeak: "file descriptors leaked: fd ",
		},
		{
			name: "goroutine left blocked",
			leak: func(*testing.T) func() {
				stop := make(chan struct{})
				go func() { <-stop }()
				return func() { close(stop) }
			},
			wantLeak: "goroutines leaked",
		},
		{
			name: "file closed and goroutine ending shortly after the test",
			leak: func(t *testing.T) func() {
				f := openDevNull(t)
				go func() {
					time.Sleep(200 * time.Millisecond)
					_ = f.Close()
				}()
				return func() {}
			},
			wantLeak: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recordingTB{TB: t}
			CheckLeaks(rec)
			undo := tt.leak(t)
			rec.finish()
			undo()
			got := strings.Join(rec.errors, "\n")
			switch {
			case tt.wantLeak == "" && got != "":
				t.Errorf("CheckLeaks reported a leak that is not there:\n%s", got)
			case tt.wantLeak != "" && !strings.Contains(got, tt.wantLeak):
				t.Errorf("CheckLeaks report %q does not contain %q", got, tt.wantLeak)
			}
		})
	}
}

func TestNewFDs(t *testing.T) {
	before := map[int]string{0: "/dev/null", 3: "socket:[1]", 4: "pipe:[7]"}
	tests := []struct {
		name string
		now  map[int]string
		want []string
	}{
		{"same", map[int]string{0: "/dev/null", 3: "socket:[1]", 4: "pipe:[7]"}, nil},
		{"one closed", map[int]string{0: "/dev/null", 3: "socket:[1]"}, nil},
		{"one opened", map[int]string{0: "/dev/null", 3: "socket:[1]", 4: "pipe:[7]", 9: "/tmp/x"},
			[]string{"fd 9 -> /tmp/x"}},
		{"number reused for something else", map[int]string{0: "/dev/null", 3: "socket:[2]", 4: "pipe:[7]"},
			[]string{"fd 3 -> socket:[2]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := newFDs(before, tt.now)
			if strings.Join(got, ";") != strings.Join(tt.want, ";") {
				t.Errorf("newFDs = %q, want %q", got, tt.want)
			}
		})
	}
}

func openDevNull(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
