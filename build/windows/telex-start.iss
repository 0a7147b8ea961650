; Inno Setup 6 script: the Windows installer of Telex Start around PyInstaller's one-dir build.
; build\windows.ps1 compiles it after PyInstaller has filled dist\telex-start\:
;
;   iscc /DAppVersion=0.1.0 /DAppNumericVersion=0.1.0 build\windows\telex-start.iss
;     -> dist\telex-start-0.1.0-setup.exe
;
; Per-user install (no administrator prompt), a Start menu entry, start at login as an optional
; task, an uninstaller. The app holds the named mutex AppMutexName while it runs, so Setup and the
; uninstaller ask the user to quit it first and never replace files that are in use.

#ifndef AppVersion
  #error Pass the version on the command line: iscc /DAppVersion=X.Y.Z ... (build\windows.ps1 does)
#endif
#ifndef AppNumericVersion
  #define AppNumericVersion AppVersion
#endif

#define AppName "Telex Start"
#define AppExeName "telex-start.exe"
; The mutex app/system/single_instance.py holds while the app runs (WINDOWS_MUTEX; tests/packaging
; checks that the two agree).
#define AppMutexName "TelexStartSingleInstance"
; The HKCU Run value of start at login; app/system/autostart.py (the menu's switch) uses the same one.
#define RunValueName "Telex Start"

[Setup]
; Never change AppId: upgrades and the uninstaller find an existing installation by it.
AppId={{42C4A9AB-384F-4401-8FC3-5C8D3E812D22}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=Telex
AppPublisherURL=https://telex.im
VersionInfoVersion={#AppNumericVersion}
VersionInfoProductName={#AppName}
PrivilegesRequired=lowest
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
DisableDirPage=auto
AppMutex={#AppMutexName}
CloseApplications=yes
RestartApplications=no
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
SourceDir=..\..
OutputDir=dist
OutputBaseFilename=telex-start-{#AppVersion}-setup
SetupIconFile=icons\telex-start.ico
UninstallDisplayIcon={app}\{#AppExeName}
UninstallDisplayName={#AppName}
WizardStyle=modern
Compression=lzma2/max
SolidCompression=yes

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
; Unticked by default: start at login is off until the user turns it on (SECURITY.md,
; app/system/autostart.py); the box is there for those who want it.
Name: "startatlogin"; Description: "Start {#AppName} when I sign in to Windows"; GroupDescription: "Start-up:"; Flags: unchecked

[InstallDelete]
; An upgrade starts from a clean runtime folder: files the new version no longer ships must not
; linger next to the ones it does.
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "dist\telex-start\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#AppExeName}"

[Registry]
; Ticked: start at login. Unticked, the value is left as it is: the user may have turned start at
; login on or off from the tray menu since, and that choice stands. Uninstalling removes it.
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Run"; ValueType: string; ValueName: "{#RunValueName}"; ValueData: """{app}\{#AppExeName}"""; Flags: uninsdeletevalue; Tasks: startatlogin
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Run"; ValueType: none; ValueName: "{#RunValueName}"; Flags: dontcreatekey uninsdeletevalue
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run"; ValueType: none; ValueName: "{#RunValueName}"; Flags: dontcreatekey uninsdeletevalue
; desktop-notifier registers the app for toasts under its display name on first run.
Root: HKCU; Subkey: "Software\Classes\AppUserModelId\{#AppName}"; Flags: dontcreatekey uninsdeletekey

[Run]
Filename: "{app}\{#AppExeName}"; Description: "Start {#AppName} now"; Flags: nowait postinstall skipifsilent
