package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sqlSession is one administrator connection held open for the whole sweep, through the command-line
// client's stdin. Because it stays connected it is counted in Threads_connected and
// Max_used_connections before, during and after every point alike, so the backend-connection count of
// a point is exactly the peak less the count before it; a fresh client per query would itself appear as
// an extra connection whenever it raced the end of a point.
type sqlSession struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // stdout, line by line; closed after the client exited
	exited chan struct{}
	stderr *lockedBuffer
	mu     sync.Mutex
}

// endMarker follows every statement batch so the reader knows where its answer ends.
const endMarker = "__sweep_end_of_answer__"

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// openSession starts `mariadb --batch` logged in as the administrator and keeps it.
func (m *mariaDB) openSession() (*sqlSession, error) {
	args := append(append([]string{}, m.clientCmd[1:]...), "--batch", "--skip-column-names", "--unbuffered", "--connect-timeout=10")
	return startSession(m.clientCmd[0], args...)
}

func startSession(name string, args ...string) (*sqlSession, error) {
	s := &sqlSession{cmd: exec.Command(name, args...), lines: make(chan string, 64), stderr: &lockedBuffer{}}
	s.cmd.Stderr = s.stderr
	var err error
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("session stdin: %w", err)
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("session stdout: %w", err)
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	s.exited = make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		// Wait also finishes copying stderr, so an error read after lines closes has the client's words.
		_ = s.cmd.Wait()
		close(s.exited)
		close(s.lines)
	}()
	if _, err := s.query(context.Background(), "SELECT 1"); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// query runs statements and returns their tab-separated rows (no headers), one per line.
func (s *sqlSession) query(ctx context.Context, q string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := io.WriteString(s.stdin, q+";\nSELECT '"+endMarker+"';\n"); err != nil {
		return "", fmt.Errorf("session %q: %w: %s", q, err, strings.TrimSpace(s.stderr.String()))
	}
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	var rows []string
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				return "", fmt.Errorf("session %q: client exited: %s", q, strings.TrimSpace(s.stderr.String()))
			}
			if line == endMarker {
				return strings.Join(rows, "\n"), nil
			}
			rows = append(rows, line)
		case <-timeout.C:
			return "", fmt.Errorf("session %q: no answer within 60s", q)
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// status reads global status counters in one round trip, in the order asked.
func (s *sqlSession) status(ctx context.Context, prefix string, names ...string) ([]int64, error) {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = "'" + n + "'"
	}
	out, err := s.query(ctx, prefix+"SHOW GLOBAL STATUS WHERE Variable_name IN ("+strings.Join(quoted, ",")+")")
	if err != nil {
		return nil, err
	}
	got := map[string]int64{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("status %s=%q: %w", k, v, err)
		}
		got[strings.ToLower(k)] = n
	}
	vals := make([]int64, len(names))
	for i, n := range names {
		v, ok := got[strings.ToLower(n)]
		if !ok {
			return nil, fmt.Errorf("status %s missing from %q", n, out)
		}
		vals[i] = v
	}
	return vals, nil
}

func (s *sqlSession) close() {
	_ = s.stdin.Close()
	go func() {
		for range s.lines { // unblock the reader if an answer was left unread
		}
	}()
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}
