package mysqlproxy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scalestack/scalestack/mysqlwire"
)

func TestParseUsers(t *testing.T) {
	good := UserLine("alice", []byte("pw")) + "\n# comment\n\n" + UserLine("bob", nil) + "\n" +
		"carol:native=*" + strings.ToUpper(strings.Split(UserLine("c", []byte("x")), "=")[1][:40]) + "\n"
	users, err := ParseUsers(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 3 || users["bob"].NoPassword != true || users["alice"].SHA2 == nil || users["carol"].SHA2 != nil {
		t.Fatalf("users %+v", users)
	}
	nonce := []byte("01234567890123456789")
	if _, err := mysqlwire.VerifyNativePassword(users["alice"].Native, nonce, mysqlwire.NativePasswordScramble([]byte("pw"), nonce)); err != nil {
		t.Fatalf("native hash does not verify: %v", err)
	}
	if err := mysqlwire.VerifyCachingSHA2(users["alice"].SHA2, nonce, mysqlwire.CachingSHA2Scramble([]byte("pw"), nonce)); err != nil {
		t.Fatalf("sha2 hash does not verify: %v", err)
	}
	for _, u := range users {
		if u.Admin {
			t.Fatalf("%s is admin without the field", u.Name)
		}
	}
	admins, err := ParseUsers(strings.NewReader(UserLine("ops", []byte("pw")) + ":admin\nroot2:admin:native=\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !admins["ops"].Admin || !admins["root2"].Admin || !admins["root2"].NoPassword || admins["ops"].Native == nil {
		t.Fatalf("admin accounts %+v %+v", admins["ops"], admins["root2"])
	}
	if strings.Contains(UserLine("alice", []byte("pw")), "pw:") {
		t.Fatal("the line contains the password")
	}
	bad := []string{
		"alice",                                 // no native field
		"alice:native=zz",                       // not hex
		"alice:native=abcd",                     // wrong length
		"alice:sha2=" + strings.Repeat("a", 64), // no native
		"alice:native=:sha2=" + strings.Repeat("a", 64),
		"alice:native=" + strings.Repeat("a", 40) + ":sha2=abc",
		"alice:native=" + strings.Repeat("a", 40) + ":other=1",
		":native=",
		UserLine("dup", nil) + "\n" + UserLine("dup", nil),
		// A repeated field must not let the last one win: this line
		// once made the account passwordless.
		"dup:native=" + strings.Repeat("a", 40) + ":native=",
		"dup:native=:native=" + strings.Repeat("a", 40),
		"dup:native=" + strings.Repeat("a", 40) + ":sha2=:sha2=",
		"dup:native=:admin:admin",
		"alice:native=:admin=1",   // admin takes no value
		"alice:native=:admin=",    // not even an empty one
		"alice:native=:superuser", // unknown field without a value
		"alice:native=:",          // empty field
		"alice:native=::admin",
		"alice:native=:Admin", // fields are case sensitive
	}
	for _, b := range bad {
		if _, err := ParseUsers(strings.NewReader(b)); err == nil {
			t.Errorf("%q: no error", b)
		}
	}
}

// TestUserStatsPerLoop: each loop writes its own counters of an account;
// a scrape sums them, and a reload keeps them for names that stay.
func TestUserStatsPerLoop(t *testing.T) {
	var r userStatsRegistry
	u, err := ParseUsers(strings.NewReader(UserLine("app", []byte("pw")) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	r.adopt(u)
	r.setLoops(3)
	st := u["app"].stats
	if len(st.loops) != 3 {
		t.Fatalf("%d counter sets after setLoops(3)", len(st.loops))
	}
	for loop, n := range []int{2, 0, 5} {
		for i := 0; i < n; i++ {
			st.on(loop).commands.Add(1)
		}
		st.on(loop).connections.Add(1)
	}
	st.on(1).connections.Add(-1)
	got := st.snapshot("app")
	if got.Commands != 7 || got.Connections != 2 {
		t.Fatalf("snapshot %+v, want 7 commands and 2 connections", got)
	}
	again, _ := ParseUsers(strings.NewReader(UserLine("app", []byte("other")) + "\n"))
	r.adopt(again)
	if again["app"].stats != st {
		t.Fatal("a reload lost the counters of an account it kept")
	}
}

// TestSecretFilesMustNotBeWritableByOthers: the users file and a password
// file that the group or everyone may write are refused, with a message
// naming the file and its mode; readable by the group is fine.
func TestSecretFilesMustNotBeWritableByOthers(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	password := filepath.Join(dir, "password")
	if err := os.WriteFile(users, []byte(UserLine("alice", []byte("pw"))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(password, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	load := map[string]func() error{
		users:    func() error { _, err := LoadUsers(users); return err },
		password: func() error { _, err := ReadPasswordFile(password); return err },
	}
	for _, c := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true}, {0o400, true}, {0o640, true}, {0o644, true},
		{0o660, false}, {0o620, false}, {0o602, false}, {0o666, false}, {0o777, false},
	} {
		for path, fn := range load {
			if err := os.Chmod(path, c.mode); err != nil {
				t.Fatal(err)
			}
			err := fn()
			if c.ok {
				if err != nil {
					t.Errorf("%s with mode %04o: %v", path, c.mode, err)
				}
				continue
			}
			want := fmt.Sprintf("%04o", c.mode)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "writable") {
				t.Errorf("%s with mode %04o: error %v, want one naming the file and mode %s", path, c.mode, err, want)
			}
		}
	}
}
