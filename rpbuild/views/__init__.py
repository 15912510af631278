"""What rpbuild shows: terminal tables, plain lines, progress and Markdown, no domain logic.

Import the submodule a command needs (`from rpbuild.views.image import image_result`):
this file imports nothing, so a repeat `rpbuild image` loads no rich and no renderer it
does not use.
"""
