package translate_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/statesync/statesync/go/canonical"
	"github.com/statesync/statesync/go/translate"
)

func converterPair(t *testing.T, there, back string) *translate.Translation {
	t.Helper()
	text := fmt.Sprintf(`{"format":"statesync.translation/1","from":1,"to":2,
		"up":[{"op":"convert","path":"/v","converter":%q}],
		"down":[{"op":"convert","path":"/v","converter":%q}]}`, there, back)
	tr, err := translate.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestLosslessConvertersRoundTrip checks docs/translations.md §9 on random
// inputs: each lossless converter's pair gives the input back.
func TestLosslessConvertersRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const minMs, maxMs = -62167219200000, 253402300799999
	cases := []struct {
		there, back string
		gen         func() any
	}{
		{"unix_ms_to_rfc3339", "rfc3339_to_unix_ms", func() any { return float64(minMs + rng.Int64N(maxMs-minMs+1)) }},
		{"int_to_string", "string_to_int", func() any { return float64(rng.Int64N(2*canonical.MaxSafeInteger+1) - canonical.MaxSafeInteger) }},
		{"ms_to_seconds", "seconds_to_ms", func() any { return float64(rng.Int64N(2000<<43-1) - 1000<<43 + 1) }},
		{"string_to_array", "array_to_string", func() any { return fmt.Sprintf("s%d", rng.Int()) }},
	}
	for _, c := range cases {
		tr := converterPair(t, c.there, c.back)
		for range 2000 {
			doc := map[string]any{"v": c.gen(), "other": true}
			up, err := tr.ApplyUp(doc)
			if err != nil {
				t.Fatalf("%s(%v): %v", c.there, doc["v"], err)
			}
			down, err := tr.ApplyDown(up)
			if err != nil {
				t.Fatalf("%s(%v): %v", c.back, up, err)
			}
			if !canonical.Equal(down, doc) {
				t.Fatalf("%s then %s: %v became %v", c.there, c.back, doc, down)
			}
		}
	}
}

// TestDerivedDownUndoesUp checks the worked example of docs/translations.md
// on generated documents whose written paths are absent.
func TestDerivedDownUndoesUp(t *testing.T) {
	tr, err := translate.Parse([]byte(`{"format": "statesync.translation/1", "from": 1, "to": 2,
		"up": [
			{"op": "rename", "from": "/name", "to": "/full_name"},
			{"op": "add", "path": "/tier", "default": "free"},
			{"op": "move", "from": "/city", "to": "/address/city"},
			{"op": "convert", "path": "/created", "converter": "unix_ms_to_rfc3339"}
		]}`))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 500 {
		doc := map[string]any{"id": float64(i)}
		if rng.IntN(2) == 0 {
			doc["name"] = fmt.Sprintf("n%d", rng.IntN(100))
		}
		if rng.IntN(2) == 0 {
			doc["city"] = map[string]any{"zip": float64(rng.IntN(1000))}
		}
		if rng.IntN(2) == 0 {
			doc["created"] = float64(rng.Int64N(4_000_000_000_000))
		}
		up, err := tr.ApplyUp(doc)
		if err != nil {
			t.Fatal(err)
		}
		down, err := tr.ApplyDown(up)
		if err != nil {
			t.Fatal(err)
		}
		if !canonical.Equal(down, doc) {
			t.Fatalf("down(up(%v)) = %v", doc, down)
		}
	}
}
