package patch_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/statesync/statesync/go/canonical"
	"github.com/statesync/statesync/go/internal/vectors"
	"github.com/statesync/statesync/go/patch"
)

func TestPatchVectors(t *testing.T) {
	var set struct {
		Vectors []struct {
			Name      string          `json:"name"`
			Document  json.RawMessage `json:"document"`
			Patch     json.RawMessage `json:"patch"`
			Canonical string          `json:"canonical"`
		} `json:"vectors"`
		Failures []struct {
			Name     string          `json:"name"`
			Document json.RawMessage `json:"document"`
			Patch    json.RawMessage `json:"patch"`
			Error    string          `json:"error"`
			OpIndex  *int            `json:"op_index"`
		} `json:"failures"`
	}
	vectors.Load(t, "patch", &set)
	for _, v := range set.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			before, _ := canonical.Canonicalize(v.Document)
			got, err := patch.ApplyJSON(v.Document, v.Patch)
			if err != nil || string(got) != v.Canonical {
				t.Fatalf("result %s (%v), want %s", got, err, v.Canonical)
			}
			doc, _ := canonical.Parse(v.Document)
			p, _ := canonical.Parse(v.Patch)
			if _, err := patch.Apply(doc, p); err != nil {
				t.Fatal(err)
			}
			if after, _ := canonical.Encode(doc); string(after) != string(before) {
				t.Fatalf("the input document changed: %s", after)
			}
		})
	}
	for _, v := range set.Failures {
		t.Run("fails/"+v.Name, func(t *testing.T) {
			_, err := patch.ApplyJSON(v.Document, v.Patch)
			var perr *patch.Error
			if !errors.As(err, &perr) {
				t.Fatalf("got %v, want a patch error", err)
			}
			want := patch.WholePatch
			if v.OpIndex != nil {
				want = *v.OpIndex
			}
			if string(perr.Kind) != v.Error || perr.OpIndex != want {
				t.Fatalf("%v: kind %s op %d, want %s op %d", err, perr.Kind, perr.OpIndex, v.Error, want)
			}
		})
	}
}
