package mysqlproxy

import (
	"testing"

	"github.com/scalestack/scalestack/internal/testutil"
)

// TestMain fails the run if the tests leave goroutines or descriptors
// behind (a session or backend the proxy lost track of, a connection of the double).
func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }
