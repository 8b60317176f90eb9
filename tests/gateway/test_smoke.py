from fakes.upstream import Reply


async def test_four_pairs_non_streaming(gateway):
    gateway.openai_up.push(Reply(text="hi from oa"), Reply(text="hi again oa"))
    gateway.anthropic_up.push(Reply(text="hi from an"), Reply(text="hi again an"))
    oa = gateway.openai()
    r = await oa.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hello"}])
    assert r.choices[0].message.content == "hi from oa"
    r = await oa.chat.completions.create(model="claude-x", messages=[{"role": "user", "content": "hello"}])
    assert r.choices[0].message.content == "hi from an"
    an = gateway.anthropic()
    m = await an.messages.create(model="claude-x", max_tokens=50, messages=[{"role": "user", "content": "hello"}])
    assert m.content[0].text == "hi again an"
    m = await an.messages.create(model="gpt-4o", max_tokens=50, messages=[{"role": "user", "content": "hello"}])
    assert m.content[0].text == "hi again oa"


async def test_four_pairs_streaming(gateway):
    oa = gateway.openai()
    for model in ("gpt-4o", "claude-x"):
        stream = await oa.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello"}], stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text.startswith("Hello from fake-")
    an = gateway.anthropic()
    for model in ("gpt-4o", "claude-x"):
        async with an.messages.stream(model=model, max_tokens=50, messages=[{"role": "user", "content": "hello"}]) as s:
            msg = await s.get_final_message()
        assert msg.content[0].text.startswith("Hello from fake-")
