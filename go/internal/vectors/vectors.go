// Package vectors loads the language-neutral files in conformance/ for the
// Go tests (conformance/README.md describes each set).
package vectors

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// FormatVersion is the only vector file format this runner knows.
const FormatVersion = 1

// Load decodes conformance/<set>/vectors.json into out, failing the test when
// the file is missing or of an unknown format version.
func Load(t testing.TB, set string, out any) {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(here), "..", "..", "..", "conformance", set, "vectors.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	var header struct {
		FormatVersion int `json:"format_version"`
	}
	if err := json.Unmarshal(data, &header); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if header.FormatVersion != FormatVersion {
		t.Fatalf("%s: format_version %d, this runner knows %d", path, header.FormatVersion, FormatVersion)
	}
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// Hex decodes a lowercase hex string from a vector, failing the test on bad input.
func Hex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q in a vector: %v", s, err)
	}
	return b
}
