package translate_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/statesync/statesync/go/canonical"
	"github.com/statesync/statesync/go/internal/vectors"
	"github.com/statesync/statesync/go/translate"
)

func parseValue(t *testing.T, raw json.RawMessage) any {
	t.Helper()
	v, err := canonical.Parse(raw)
	if err != nil {
		t.Fatalf("vector value %s: %v", raw, err)
	}
	return v
}

func run(t *testing.T, tr *translate.Translation, direction string, input any) (any, error) {
	t.Helper()
	switch direction {
	case "up":
		return tr.ApplyUp(input)
	case "down":
		return tr.ApplyDown(input)
	}
	t.Fatalf("unknown direction %q", direction)
	return nil, nil
}

func TestTranslateVectors(t *testing.T) {
	var set struct {
		Vectors []struct {
			Name        string          `json:"name"`
			Translation json.RawMessage `json:"translation"`
			Direction   string          `json:"direction"`
			Input       json.RawMessage `json:"input"`
			Output      json.RawMessage `json:"output"`
		} `json:"vectors"`
		Failures []struct {
			Name        string          `json:"name"`
			Translation json.RawMessage `json:"translation"`
			Direction   string          `json:"direction"`
			Input       json.RawMessage `json:"input"`
			Error       string          `json:"error"`
			OpIndex     *int            `json:"op_index"`
			Field       string          `json:"field"`
		} `json:"failures"`
		Invalid []struct {
			Name        string          `json:"name"`
			Translation json.RawMessage `json:"translation"`
			Error       string          `json:"error"`
			OpIndex     *int            `json:"op_index"`
			Field       string          `json:"field"`
		} `json:"invalid"`
		Canonical []struct {
			Name        string          `json:"name"`
			Translation json.RawMessage `json:"translation"`
			Canonical   json.RawMessage `json:"canonical"`
		} `json:"canonical"`
	}
	vectors.Load(t, "translate", &set)
	opIndex := func(p *int) int {
		if p == nil {
			return translate.NoOp
		}
		return *p
	}
	for _, v := range set.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			tr, err := translate.Parse(v.Translation)
			if err != nil {
				t.Fatal(err)
			}
			input := parseValue(t, v.Input)
			before, _ := canonical.Encode(input)
			got, err := run(t, tr, v.Direction, input)
			if err != nil {
				t.Fatal(err)
			}
			if want := parseValue(t, v.Output); !canonical.Equal(got, want) {
				gotText, _ := canonical.Encode(got)
				t.Fatalf("%s gives %s, want %s", v.Direction, gotText, v.Output)
			}
			if after, _ := canonical.Encode(input); string(after) != string(before) {
				t.Fatalf("the input changed: %s", after)
			}
		})
	}
	for _, v := range set.Failures {
		t.Run("fails/"+v.Name, func(t *testing.T) {
			tr, err := translate.Parse(v.Translation)
			if err != nil {
				t.Fatal(err)
			}
			_, err = run(t, tr, v.Direction, parseValue(t, v.Input))
			var e *translate.Error
			if !errors.As(err, &e) || e.OpIndex != opIndex(v.OpIndex) || e.Field != v.Field {
				t.Fatalf("%v, want op %v field %q", err, opIndex(v.OpIndex), v.Field)
			}
		})
	}
	for _, v := range set.Invalid {
		t.Run("invalid/"+v.Name, func(t *testing.T) {
			_, err := translate.Parse(v.Translation)
			var e *translate.Error
			if !errors.As(err, &e) || e.OpIndex != opIndex(v.OpIndex) || e.Field != v.Field {
				t.Fatalf("%v, want op %v field %q", err, opIndex(v.OpIndex), v.Field)
			}
		})
	}
	for _, v := range set.Canonical {
		t.Run("canonical/"+v.Name, func(t *testing.T) {
			tr, err := translate.Parse(v.Translation)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := tr.Canonical(), parseValue(t, v.Canonical); !canonical.Equal(any(got), want) {
				gotText, _ := canonical.Encode(got)
				t.Fatalf("canonical %s, want %s", gotText, v.Canonical)
			}
		})
	}
}
