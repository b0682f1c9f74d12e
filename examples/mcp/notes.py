"""The flagship's MCP server: a team's notes, searched offline.

A stdio MCP server on the official `mcp` Python SDK (`pip install mcp`). The
executor of examples/plan-execute-audit.toml asks it for the notes that bear
on its task when examples/paddock.toml configures it as [mcp.notes] and its
tenant grants `notes/search`. Run it by hand with `paddock tools list` from
examples/, or see what it answers:

    paddock --config examples/paddock.toml tools call notes/search --args '{"query": "release the launch note"}'
"""
import re

from mcp.server.mcpserver import MCPServer

NOTES = [
    ("launch", "The launch is on a Tuesday: support is fully staffed and the status page is watched."),
    ("launch note", "A launch note leads with what a user can do now, then how to start, then what changed."),
    ("research", "Research starts from the last three support tickets on the topic, not from a blank page."),
    ("build", "Every build ships behind a flag that is on for the team first and for everyone a day later."),
    ("review", "A review needs one reader who did not write it; they check every number against its source."),
    ("document", "Documentation goes in the same change as the feature, with one runnable example."),
    ("release", "A release is tagged from main after CI passed on that exact commit; the tag names the date."),
    ("follow", "Follow-ups are filed as issues the day after a launch, each with an owner and a date."),
    ("write", "Write short sentences in the active voice; one idea per paragraph."),
]

app = MCPServer("notes")


def words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 4}


@app.tool(description="Finds the team's notes that bear on a query, best first")
def search(query: str, limit: int = 3) -> dict:
    asked = words(query)
    scored = []
    for order, (topic, note) in enumerate(NOTES):
        score = len(asked & words(topic)) * 2 + len(asked & words(note))
        if score > 0:
            scored.append((-score, order, note))
    scored.sort()
    return {"notes": [note for _, _, note in scored[: max(0, min(limit, 10))]]}


if __name__ == "__main__":
    app.run()
