// The ctxwatch extension: runs `ctxwatch lsp` (the language server is part of
// the ctxwatch CLI) and lets it open a terminal for "Build with ctxwatch".
import * as vscode from "vscode";
import { LanguageClient, LanguageClientOptions, ServerOptions } from "vscode-languageclient/node";

const RUN_IN_TERMINAL = "ctxwatch.runInTerminal";
let client: LanguageClient | undefined;

interface TerminalCommand {
  cwd: string;
  argv: string[];
}

// POSIX shell quoting: the terminal runs the command line as typed.
function shellQuote(word: string): string {
  return /^[A-Za-z0-9_\/.,:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function start(context: vscode.ExtensionContext): Promise<void> {
  const config = vscode.workspace.getConfiguration("ctxwatch");
  const serverOptions: ServerOptions = {
    command: config.get<string>("path", "ctxwatch"),
    args: ["lsp"],
  };
  const clientOptions: LanguageClientOptions = {
    // Dockerfiles get the steps' fate; any other file, the steps that read it.
    documentSelector: [{ scheme: "file" }],
    initializationOptions: {
      inlayHints: config.get<boolean>("inlayHints", true),
      codeLens: config.get<boolean>("codeLens", false),
      terminalCommand: RUN_IN_TERMINAL,
    },
  };
  client = new LanguageClient("ctxwatch", "ctxwatch", serverOptions, clientOptions);
  return client.start();
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  context.subscriptions.push(
    vscode.commands.registerCommand(RUN_IN_TERMINAL, (command: TerminalCommand) => {
      const terminal = vscode.window.createTerminal({ name: "ctxwatch build", cwd: command.cwd });
      terminal.show();
      terminal.sendText(command.argv.map(shellQuote).join(" "));
    }),
    vscode.commands.registerCommand("ctxwatch.restart", async () => {
      await client?.stop();
      await start(context);
    }),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration("ctxwatch")) {
        await client?.stop();
        await start(context);
      }
    }),
  );
  await start(context);
}

export function deactivate(): Thenable<void> | undefined {
  return client?.stop();
}
