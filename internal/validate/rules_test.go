package validate_test

import (
	"slices"
	"testing"

	"github.com/yolda/yolda/internal/validate"
)

type colour string

func (colour) Enum() []string { return []string{"red", "green"} }

type inner struct {
	Lat  *float64 `json:"lat" validate:"required,min=-90,max=90"`
	Name string   `json:"name,omitempty" validate:"max=3"`
}

type outer struct {
	Kind   colour `json:"kind" validate:"required"`
	Where  *inner `json:"where" validate:"required"`
	Second *inner `json:"second,omitempty" validate:"required_if=kind:red"`
	Note   string `json:"note" validate:"max=5"`
	Secret string `json:"-" validate:"required"`
}

func fields(e validate.Errors) []string {
	var out []string
	for _, f := range e {
		out = append(out, f.Field+": "+f.Message)
	}
	return out
}

func TestStruct(t *testing.T) {
	ninety, far := 90.0, 91.0
	cases := []struct {
		name string
		v    outer
		want []string
	}{
		{"valid", outer{Kind: "green", Where: &inner{Lat: &ninety}}, nil},
		{"missing", outer{}, []string{"kind: is required", "where: is required"}},
		{"blank is missing", outer{Kind: "  ", Where: &inner{Lat: &ninety}}, []string{"kind: is required"}},
		{"enum", outer{Kind: "blue", Where: &inner{Lat: &ninety}}, []string{"kind: must be one of red, green"}},
		{"nested range and length", outer{Kind: "green", Where: &inner{Lat: &far, Name: "abcd"}, Note: "x\x00"},
			[]string{"where.lat: must be between -90 and 90", "where.name: must be at most 3 characters", "note: must not contain control characters"}},
		{"nested required", outer{Kind: "green", Where: &inner{}}, []string{"where.lat: is required"}},
		{"required if", outer{Kind: "red", Where: &inner{Lat: &ninety}}, []string{"second: is required when kind is red"}},
		{"required if met", outer{Kind: "red", Where: &inner{Lat: &ninety}, Second: &inner{Lat: &ninety}}, nil},
	}
	for _, tc := range cases {
		var errs validate.Errors
		validate.Struct(&errs, "", &tc.v)
		if got := fields(errs); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}
