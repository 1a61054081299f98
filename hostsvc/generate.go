package hostsvc

// The shipped deploy/systemd and deploy/launchd files, and the golden
// files, are rendered by this package's code; regenerate them after a
// change to the renderers (TestDeployFilesMatchCode fails until you do).
//go:generate go test -run ^(TestDeployFilesMatchCode|TestUnitGolden|TestPlistGolden|TestUpgradeUnitsGolden|TestUpgradeDeployFilesMatchCode)$ -update .
