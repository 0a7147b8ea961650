# Smoke test of the built Windows app on a release runner, as a user runs it:
#
#   pwsh -File build\smoke-windows.ps1 -Exe <path>\telex-start.exe -Work <dir>
#
#   1. --self-test passes, and the win10toast-click fallback is in the build;
#   2. --test-notification exits 0 and the toast went through desktop-notifier's WinRT backend:
#      this is where the pinned pywinrt 4.x is proven to work under desktop-notifier 6.2.0 (it
#      was written for 3.x); if not, the log names the fallback that showed it, or why none did;
#   3. the headless mode signs in to the local Telex stack (python -m devstack, run from this
#      checkout with the build virtualenv) over loopback and shows the notification it gets;
#   4. the desktop mode is still running after 10 s with the pystray win32 backend; a second
#      launch hands over and exits 0; then the end of a Windows session ends it cleanly, exit 0:
#      the script sends the tray's window what Windows sends at sign-out (WM_QUERYENDSESSION,
#      which must be answered 1, then WM_ENDSESSION). Windows has no SIGTERM, and taskkill
#      without /F only posts WM_CLOSE, which pystray's window ignores.
#
# The headless mode, which has no window, is ended with Stop-Process: its clean exit is not
# what this checks. Each part logs to <Work>\<part>\logs\telex-start.log (TELEX_LOG_DIR); the
# workflow keeps <Work> when a step fails. Not run before a Windows runner did: written with
# care, checked only by reading (tests/packaging/test_release_workflow.py names its checks).
param(
    [Parameter(Mandatory)][string]$Exe,
    [Parameter(Mandatory)][string]$Work,
    [string]$StackPython = (Join-Path (Split-Path -Parent $PSScriptRoot) "build\.work\venv\Scripts\python.exe")
)

$ErrorActionPreference = "Stop"
Set-StrictMode -Version Latest

$Root = Split-Path -Parent $PSScriptRoot
New-Item -ItemType Directory -Force -Path $Work | Out-Null
$Work = (Resolve-Path $Work).Path
$script:Log = $null

if (-not ("TelexSmokeWindows" -as [type])) { Add-Type -TypeDefinition @'
using System;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

public static class TelexSmokeWindows {
    private delegate bool EnumProc(IntPtr hwnd, IntPtr lParam);
    [DllImport("user32.dll")] private static extern bool EnumWindows(EnumProc callback, IntPtr lParam);
    [DllImport("user32.dll")] private static extern uint GetWindowThreadProcessId(IntPtr hwnd, out uint pid);
    [DllImport("user32.dll", CharSet = CharSet.Unicode)]
    private static extern int GetClassNameW(IntPtr hwnd, StringBuilder name, int size);
    [DllImport("user32.dll", SetLastError = true)]
    private static extern IntPtr SendMessageTimeoutW(
        IntPtr hwnd, uint msg, UIntPtr wParam, IntPtr lParam, uint flags, uint timeout, out UIntPtr result);

    // The top-level window of process pid whose class name matches pattern, or IntPtr.Zero.
    public static IntPtr Find(uint pid, string pattern) {
        IntPtr found = IntPtr.Zero;
        EnumWindows((hwnd, _) => {
            uint owner;
            GetWindowThreadProcessId(hwnd, out owner);
            if (owner != pid) return true;
            var name = new StringBuilder(256);
            GetClassNameW(hwnd, name, name.Capacity);
            if (!Regex.IsMatch(name.ToString(), pattern)) return true;
            found = hwnd;
            return false;
        }, IntPtr.Zero);
        return found;
    }

    // SendMessage with a 5 s limit (SMTO_ABORTIFHUNG); throws when the window did not answer.
    public static long Send(IntPtr hwnd, uint msg, ulong wParam, long lParam) {
        UIntPtr result;
        if (SendMessageTimeoutW(hwnd, msg, new UIntPtr(wParam), new IntPtr(lParam), 0x2, 5000, out result) == IntPtr.Zero)
            throw new System.ComponentModel.Win32Exception(Marshal.GetLastWin32Error());
        return (long)result.ToUInt64();
    }
}
'@ }

function Fail([string]$Reason) {
    Write-Host "::error::smoke test of ${Exe}: $Reason"
    if ($script:Log -and (Test-Path $script:Log)) {
        Write-Host "--- last lines of $($script:Log)"
        Get-Content $script:Log -Tail 40
    }
    throw $Reason
}

function Enter-Part([string]$Name) {
    # A fresh config and log dir for the next part.
    Write-Host "==> $Name"
    $env:TELEX_CONFIG_DIR = Join-Path $Work "$Name\config"
    $env:TELEX_LOG_DIR = Join-Path $Work "$Name\logs"
    New-Item -ItemType Directory -Force -Path $env:TELEX_CONFIG_DIR, $env:TELEX_LOG_DIR | Out-Null
    $script:Log = Join-Path $env:TELEX_LOG_DIR "telex-start.log"
}

function Start-App([string[]]$Arguments, [hashtable]$Redirect = @{}) {
    # The windowed exe started like from a shortcut (plus redirections); its handle is read at
    # once so ExitCode is still there after it exits.
    $options = @{ FilePath = $Exe; PassThru = $true } + $Redirect
    if ($Arguments) { $options.ArgumentList = $Arguments }
    $process = Start-Process @options
    $null = $process.Handle
    return $process
}

function Wait-Exit($Process, [int]$Seconds, [string]$What) {
    if (-not $Process.WaitForExit($Seconds * 1000)) {
        Stop-Process -Id $Process.Id -Force -ErrorAction SilentlyContinue
        Fail "$What did not exit within $Seconds s"
    }
    return $Process.ExitCode
}

function Wait-Log([int]$Seconds, [string]$Pattern, $Process = $null) {
    $deadline = (Get-Date).AddSeconds($Seconds)
    while ((Get-Date) -lt $deadline) {
        if ((Test-Path $script:Log) -and (Select-String -Path $script:Log -Pattern $Pattern -Quiet)) { return }
        if ($Process -and $Process.HasExited) { break }
        Start-Sleep -Milliseconds 500
    }
    Fail "no line matching '$Pattern' in the log within $Seconds s"
}

if (-not (Test-Path $Exe)) { Fail "no executable at $Exe" }
$Exe = (Resolve-Path $Exe).Path  # the parts start it from other working directories too

Enter-Part "self-test"
$report = Join-Path $Work "self-test.json"
$p = Start-App @("--self-test", "--api-url", $(if ($env:SELF_TEST_API_URL) { $env:SELF_TEST_API_URL } else { "https://api.github.com" })) `
    @{ RedirectStandardOutput = $report }
$code = Wait-Exit $p 120 "--self-test"
Get-Content $report
if ($code -ne 0) { Fail "--self-test exited $code" }
$fallback = (Get-Content -Raw $report | ConvertFrom-Json).optional_fallbacks.win10toast_click
if ($fallback -ne "imported") { Fail "the win10toast-click fallback is not usable in the build: $fallback" }

Enter-Part "test-notification"
# No redirection: the windowed exe has no stdout then, as when a user runs it; the result is in the log.
$p = Start-App @("--test-notification")
$code = Wait-Exit $p 60 "--test-notification"
Select-String -Path $script:Log -Pattern "Test notification", "notifier", "Notification permission" | ForEach-Object { $_.Line }
if ($code -ne 0) { Fail "--test-notification exited $code" }
if (-not (Select-String -Path $script:Log -Pattern "Test notification shown through desktop" -Quiet)) {
    Fail "the toast did not go through desktop-notifier's WinRT backend (pywinrt 4.x under desktop-notifier 6.2.0?)"
}
$aumid = "HKCU:\Software\Classes\AppUserModelId\Telex Start"  # what desktop-notifier registers
if (-not (Test-Path $aumid)) { Fail "desktop-notifier did not register the AppUserModelID $aumid" }
Get-ItemProperty $aumid | Format-List DisplayName, IconUri

Enter-Part "headless"
$stackOut = Join-Path $Work "stack.txt"
$stack = Start-Process -FilePath $StackPython -ArgumentList "-m", "devstack", "--events-every", "1" `
    -WorkingDirectory $Root -NoNewWindow -PassThru -RedirectStandardOutput $stackOut -RedirectStandardError (Join-Path $Work "stack-stderr.txt")
$headless = $null
try {
    $deadline = (Get-Date).AddSeconds(30)
    while (-not ((Test-Path $stackOut) -and (Select-String -Path $stackOut -Pattern "^  Account:" -Quiet))) {
        if ($stack.HasExited -or (Get-Date) -gt $deadline) { Fail "the local stack did not start: $(Get-Content -Raw $stackOut)" }
        Start-Sleep -Milliseconds 500
    }
    $banner = Get-Content -Raw $stackOut
    $api = [regex]::Match($banner, "API:\s+(\S+)").Groups[1].Value
    $ws = [regex]::Match($banner, "or directly (ws://[^)\s]+)").Groups[1].Value
    $account = [regex]::Match($banner, "Account:\s+(\S+) / (\S+)")
    $password = Join-Path $Work "password.txt"  # the demo account's, shown in the banner anyway
    Set-Content -Path $password -Value $account.Groups[2].Value
    $headless = Start-App @("--headless", "--email", $account.Groups[1].Value, "--password-stdin",
        "--api-url", $api, "--ws-url", $ws, "--log-level", "DEBUG") `
        @{ RedirectStandardInput = $password; RedirectStandardError = (Join-Path $Work "headless-stderr.txt") }
    Wait-Log 60 "State: connected" $headless
    Wait-Log 60 "Notification (NOT )?shown" $headless
    Select-String -Path $script:Log -Pattern "Notification (NOT )?shown" | ForEach-Object { $_.Line }
    if (-not (Select-String -Path $script:Log -Pattern "Notification shown" -Quiet)) {
        Fail "the headless mode got the message but showed nothing"
    }
} finally {
    if ($headless -and -not $headless.HasExited) { Stop-Process -Id $headless.Id -Force }
    if (-not $stack.HasExited) { Stop-Process -Id $stack.Id -Force }
}

Enter-Part "desktop"
$desktop = Start-App @()
Start-Sleep 10
if ($desktop.HasExited) { Fail "the desktop mode exited within 10 s (exit code $($desktop.ExitCode))" }
if (-not (Select-String -Path $script:Log -Pattern "Tray icon backend: pystray._win32" -Quiet)) { Fail "no win32 tray icon in the log" }
$second = Start-App @()
$code = Wait-Exit $second 30 "the second launch"
if ($code -ne 0) { Fail "a second launch exited $code instead of handing over" }
Wait-Log 10 "Another launch asked for: activate" $desktop

# The end of the session, as Windows delivers it to the tray icon's window (pystray names its
# class "<icon name><id>SystemTrayIcon").
$hwnd = [TelexSmokeWindows]::Find([uint32]$desktop.Id, "^telex-start\d+SystemTrayIcon$")
if ($hwnd -eq [IntPtr]::Zero) { Fail "no tray icon window in the desktop process" }
$answer = [TelexSmokeWindows]::Send($hwnd, 0x0011, 0, 0)  # WM_QUERYENDSESSION
if ($answer -ne 1) { Fail "WM_QUERYENDSESSION was answered $answer: the app would hold up sign-out" }
$null = [TelexSmokeWindows]::Send($hwnd, 0x0016, 1, [long]2147483648)  # WM_ENDSESSION, ENDSESSION_LOGOFF
$code = Wait-Exit $desktop 20 "the desktop mode, after WM_ENDSESSION,"
if ($code -ne 0) { Fail "the desktop mode exited $code" }
foreach ($line in "Windows is ending the session: exiting", "Command: exit") {
    if (-not (Select-String -Path $script:Log -Pattern $line -SimpleMatch -Quiet)) { Fail "the log lacks '$line'" }
}
Write-Host "==> ${Exe}: smoke test passed"
