package schema_test

import (
	"encoding/json"
	"testing"

	"github.com/statesync/statesync/go/canonical"
	"github.com/statesync/statesync/go/internal/vectors"
	"github.com/statesync/statesync/go/schema"
)

func TestValidateVectors(t *testing.T) {
	var set struct {
		Vectors []struct {
			Name       string          `json:"name"`
			Schema     json.RawMessage `json:"schema"`
			Value      json.RawMessage `json:"value"`
			Valid      bool            `json:"valid"`
			Violations []struct {
				Path    string `json:"path"`
				Keyword string `json:"keyword"`
			} `json:"violations"`
		} `json:"vectors"`
	}
	vectors.Load(t, "validate", &set)
	for _, v := range set.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			doc, err := canonical.Parse(v.Schema)
			if err != nil {
				t.Fatal(err)
			}
			s, err := schema.Compile(doc)
			if err != nil {
				t.Fatal(err)
			}
			value, err := canonical.Parse(v.Value)
			if err != nil {
				t.Fatal(err)
			}
			got := s.Validate(value)
			if (len(got) == 0) != v.Valid || len(got) != len(v.Violations) {
				t.Fatalf("violations %+v, want %+v", got, v.Violations)
			}
			for i, want := range v.Violations {
				if got[i].Path != want.Path || got[i].Keyword != want.Keyword {
					t.Fatalf("violation %d: %s %s, want %s %s", i, got[i].Path, got[i].Keyword, want.Path, want.Keyword)
				}
			}
		})
	}
}

func TestCompileRefusesABadSchema(t *testing.T) {
	if _, err := schema.Compile(map[string]any{"type": 5.0}); err == nil {
		t.Fatal("a schema whose type is a number compiled")
	}
}
