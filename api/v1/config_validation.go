package v1

import (
	"maps"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateConfigKeys checks the keys of a Secret's or ConfigMap's data:
// each becomes a file name, so it must be a Kubernetes config key
// (letters, digits, '-', '_', '.'; not "." or ".."; at most 253
// characters), and the data must fit in MaxConfigSize.
func validateConfigKeys(keys []string, size int, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, k := range keys {
		for _, msg := range validation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(p.Key(k), k, msg))
		}
	}
	if size > MaxConfigSize {
		errs = append(errs, field.TooLong(p, nil, MaxConfigSize))
	}
	return errs
}

func validateSecret(s *Secret) field.ErrorList {
	size := 0
	for k, v := range s.Data {
		size += len(k) + len(v)
	}
	return validateConfigKeys(slices.Sorted(maps.Keys(s.Data)), size, field.NewPath("data"))
}

func validateConfigMap(c *ConfigMap) field.ErrorList {
	size := 0
	for k, v := range c.Data {
		size += len(k) + len(v)
	}
	return validateConfigKeys(slices.Sorted(maps.Keys(c.Data)), size, field.NewPath("data"))
}

func defaultCanaryConfig(c *CanaryConfig) {
	s := &c.Spec
	if s.WeightIncrement == 0 {
		s.WeightIncrement = DefaultCanaryWeightIncrement
	}
	if s.WeightIncrementDuration == "" {
		s.WeightIncrementDuration = DefaultCanaryDuration
	}
	if s.FailureType == "" {
		s.FailureType = FailureTypeStatusCode
	}
	if c.Status.Status == "" {
		c.Status.Status = CanaryStatusPending
	}
}

func validateCanaryConfig(c *CanaryConfig) field.ErrorList {
	s := &c.Spec
	p := field.NewPath("spec")
	var errs field.ErrorList
	errs = append(errs, validateName(s.Trigger, p.Child("trigger"))...)
	errs = append(errs, validateName(s.NewFunction, p.Child("newfunction"))...)
	errs = append(errs, validateName(s.OldFunction, p.Child("oldfunction"))...)
	if s.NewFunction != "" && s.NewFunction == s.OldFunction {
		errs = append(errs, field.Invalid(p.Child("newfunction"), s.NewFunction, "must differ from oldfunction"))
	}
	if s.WeightIncrement < 1 || s.WeightIncrement > 100 {
		errs = append(errs, field.Invalid(p.Child("weightincrement"), s.WeightIncrement, "must be between 1 and 100"))
	}
	if d, err := time.ParseDuration(s.WeightIncrementDuration); err != nil {
		errs = append(errs, field.Invalid(p.Child("duration"), s.WeightIncrementDuration, `must be a Go duration such as "2m" or "30s"`))
	} else if d < MinCanaryDuration {
		errs = append(errs, field.Invalid(p.Child("duration"), s.WeightIncrementDuration, "must be at least "+MinCanaryDuration.String()))
	}
	if s.FailureThreshold < 0 || s.FailureThreshold > 100 {
		errs = append(errs, field.Invalid(p.Child("failurethreshold"), s.FailureThreshold, "must be a percentage between 0 and 100"))
	}
	if s.FailureType != FailureTypeStatusCode {
		errs = append(errs, field.NotSupported(p.Child("failureType"), s.FailureType, []FailureType{FailureTypeStatusCode}))
	}
	switch c.Status.Status {
	case "", CanaryStatusPending, CanaryStatusSucceeded, CanaryStatusFailed, CanaryStatusAborted:
	default:
		errs = append(errs, field.NotSupported(field.NewPath("status", "status"), c.Status.Status,
			[]CanaryStatus{CanaryStatusPending, CanaryStatusSucceeded, CanaryStatusFailed, CanaryStatusAborted}))
	}
	return errs
}

// MinCanaryDuration is the shortest interval between canary steps: short
// enough for tests, long enough that an interval holds requests.
const MinCanaryDuration = 100 * time.Millisecond
