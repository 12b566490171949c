package verify

// Internals the external tests reach (verify_test.go is package verify_test, to use
// verifytest, which imports verify).
var (
	RunningTasks = runningTasks
	TargetGroups = targetGroups
)
