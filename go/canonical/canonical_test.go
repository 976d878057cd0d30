package canonical_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strings"
	"testing"

	"github.com/statesync/statesync/go/canonical"
	"github.com/statesync/statesync/go/internal/vectors"
)

type canonicalVectors struct {
	Valid []struct {
		Name         string `json:"name"`
		Input        string `json:"input"`
		Canonical    string `json:"canonical"`
		CanonicalHex string `json:"canonical_hex"`
		SHA256       string `json:"sha256"`
	} `json:"valid"`
	Invalid []struct {
		Name     string  `json:"name"`
		Input    *string `json:"input"`
		InputHex string  `json:"input_hex"`
		Error    string  `json:"error"`
	} `json:"invalid"`
}

func TestCanonicalVectors(t *testing.T) {
	var set canonicalVectors
	vectors.Load(t, "canonical", &set)
	if len(set.Valid) == 0 || len(set.Invalid) == 0 {
		t.Fatal("no vectors loaded")
	}
	for _, v := range set.Valid {
		t.Run("valid/"+v.Name, func(t *testing.T) {
			got, err := canonical.Canonicalize([]byte(v.Input))
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			want := vectors.Hex(t, v.CanonicalHex)
			if !bytes.Equal(got, want) {
				t.Fatalf("canonical bytes %q, want %q", got, want)
			}
			if sum := sha256.Sum256(got); hex.EncodeToString(sum[:]) != v.SHA256 {
				t.Fatalf("sha256 %x, want %s", sum, v.SHA256)
			}
			again, err := canonical.Canonicalize([]byte(v.Canonical))
			if err != nil || !bytes.Equal(again, want) {
				t.Fatalf("not a fixed point: %q, %v", again, err)
			}
		})
	}
	for _, v := range set.Invalid {
		t.Run("invalid/"+v.Name, func(t *testing.T) {
			input := []byte(nil)
			if v.InputHex != "" {
				input = vectors.Hex(t, v.InputHex)
			} else if v.Input != nil {
				input = []byte(*v.Input)
			}
			_, err := canonical.Parse(input)
			if err == nil {
				t.Fatal("accepted")
			}
			if kind := canonical.KindOf(err); string(kind) != v.Error {
				t.Fatalf("refused as %q (%v), want %q", kind, err, v.Error)
			}
		})
	}
}

func TestNestingLimit(t *testing.T) {
	ok := strings.Repeat("[", canonical.MaxDepth) + strings.Repeat("]", canonical.MaxDepth)
	if _, err := canonical.Canonicalize([]byte(ok)); err != nil {
		t.Fatalf("%d levels refused: %v", canonical.MaxDepth, err)
	}
	deep := "[" + ok + "]"
	if _, err := canonical.Parse([]byte(deep)); canonical.KindOf(err) != canonical.TooDeep {
		t.Fatalf("%d levels: %v, want too_deep", canonical.MaxDepth+1, err)
	}
	var v any = map[string]any{}
	for range canonical.MaxDepth {
		v = []any{v}
	}
	if _, err := canonical.Encode(v); canonical.KindOf(err) != canonical.TooDeep {
		t.Fatalf("encoding %d levels: %v, want too_deep", canonical.MaxDepth+1, err)
	}
}

func TestEncodeRefusesNonIJSONNumbers(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), 1 << 53, -1e20} {
		if _, err := canonical.Encode(f); err == nil {
			t.Errorf("%v encoded", f)
		}
	}
}

// FuzzCanonicalFixedPoint checks that whatever Parse accepts canonicalizes to
// a fixed point: parsing the canonical bytes gives the same bytes again.
func FuzzCanonicalFixedPoint(f *testing.F) {
	for _, seed := range []string{`{"b":[1,2.5e-7,"\u00e9"],"a":null}`, `1e21`, `"\ud83d\ude00"`, `[0.1,-0]`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		first, err := canonical.Canonicalize(data)
		if err != nil {
			return
		}
		second, err := canonical.Canonicalize(first)
		if err != nil || !bytes.Equal(first, second) {
			t.Fatalf("%q -> %q -> %q (%v)", data, first, second, err)
		}
	})
}
