# Build the Windows installer of Telex Start:
#   1. a virtualenv with only the pinned build requirements (build\requirements-build.txt),
#   2. PyInstaller's one-dir app in dist\telex-start\ (telex_start.spec),
#   3. Inno Setup: dist\telex-start-<version>-setup.exe (build\windows\telex-start.iss).
#
#   powershell -ExecutionPolicy Bypass -File build\windows.ps1 [-Fresh]
#
# -Fresh recreates the virtualenv (otherwise it is reused while the pins and Python are the same).
# PyInstaller works in build\.work (ignored by git) and writes dist\; this script removes nothing
# but its own virtualenv inside build\.work: build\ holds committed files.
#
# Needs Python >= 3.11 (PYTHON=C:\path\to\python.exe, else "python" on PATH) and Inno Setup 6
# (winget install JRSoftware.InnoSetup, or choco install innosetup).
param([switch]$Fresh)

$ErrorActionPreference = "Stop"
Set-StrictMode -Version Latest

$Root = Split-Path -Parent $PSScriptRoot
$Work = Join-Path $Root "build\.work"
$Venv = Join-Path $Work "venv"
$VenvPython = Join-Path $Venv "Scripts\python.exe"
$Requirements = Join-Path $Root "build\requirements-build.txt"
$env:PIP_DISABLE_PIP_VERSION_CHECK = "1"

function Invoke-Checked {
    # Native programs report failure through the exit code only; stop on the first one. A plain
    # function (no param block), so arguments such as -m or --workpath reach the program as-is.
    $program, $arguments = $args
    & $program @arguments
    if ($LASTEXITCODE -ne 0) { throw "$program $($arguments -join ' ') failed with exit code $LASTEXITCODE" }
}

function Find-InnoSetup {
    $onPath = Get-Command iscc.exe -ErrorAction SilentlyContinue
    if ($onPath) { return $onPath.Source }
    foreach ($dir in @(${env:ProgramFiles(x86)}, $env:ProgramFiles, (Join-Path $env:LOCALAPPDATA "Programs"))) {
        if (-not $dir) { continue }
        $candidate = Join-Path $dir "Inno Setup 6\ISCC.exe"
        if (Test-Path $candidate) { return $candidate }
    }
    throw "Inno Setup 6 not found: winget install JRSoftware.InnoSetup (or choco install innosetup)"
}

$Python = if ($env:PYTHON) { $env:PYTHON } else { "python" }
Invoke-Checked $Python -c "import sys; sys.exit(sys.version_info < (3, 11))"
$Iscc = Find-InnoSetup
$started = Get-Date

New-Item -ItemType Directory -Force -Path $Work | Out-Null
$stamp = Join-Path $Venv ".build-requirements.sha256"
$pythonVersion = & $Python -VV
$pins = (Get-Content -Raw $Requirements) + (Get-Content -Raw (Join-Path $Root "requirements.txt"))
$hasher = [System.Security.Cryptography.SHA256]::Create()
$wanted = [System.BitConverter]::ToString(
    $hasher.ComputeHash([System.Text.Encoding]::UTF8.GetBytes("$pythonVersion`n$pins"))).Replace("-", "")
$current = if (Test-Path $stamp) { (Get-Content -Raw $stamp).Trim() } else { "" }
if ($Fresh -or $current -ne $wanted -or -not (Test-Path $VenvPython)) {
    Write-Host "==> Build virtualenv $Venv ($pythonVersion)"
    if (Test-Path $Venv) { Remove-Item -Recurse -Force $Venv }
    Invoke-Checked $Python -m venv $Venv
    Invoke-Checked $VenvPython -m pip install -q --require-virtualenv -r $Requirements
    Set-Content -Path $stamp -Value $wanted
} else {
    Write-Host "==> Build virtualenv $Venv is up to date"
}

# The Windows fallback notifier must import in the build venv, or PyInstaller leaves it out with
# only a warning (the self-test of the frozen app then reports it "not installed").
Invoke-Checked $VenvPython -W ignore -c "import win10toast_click"

Push-Location $Root
try {
    Write-Host "==> PyInstaller (telex_start.spec)"
    Invoke-Checked $VenvPython -m PyInstaller --noconfirm --clean --log-level WARN `
        --workpath (Join-Path $Work "pyinstaller") --distpath (Join-Path $Root "dist") `
        (Join-Path $Root "telex_start.spec")
    $exe = Join-Path $Root "dist\telex-start\telex-start.exe"
    if (-not (Test-Path $exe)) { throw "PyInstaller did not produce $exe" }

    # Inno wants a purely numeric VersionInfoVersion; app.__version__ may carry a pre-release tag.
    $version = & $VenvPython -c "import app; print(app.__version__)"
    $numeric = & $VenvPython -c "import app, packaging.version as v; print('.'.join(map(str, v.Version(app.__version__).release)))"

    Write-Host "==> Inno Setup ($Iscc)"
    Invoke-Checked $Iscc /Qp "/DAppVersion=$version" "/DAppNumericVersion=$numeric" `
        (Join-Path $Root "build\windows\telex-start.iss")
} finally {
    Pop-Location
}

$setup = Join-Path $Root "dist\telex-start-$version-setup.exe"
if (-not (Test-Path $setup)) { throw "Inno Setup did not produce $setup" }
$size = (Get-Item $setup).Length
$elapsed = [int]((Get-Date) - $started).TotalSeconds
Write-Host ("==> {0}: {1:N1} MiB, built in {2} s" -f $setup, ($size / 1MB), $elapsed)
