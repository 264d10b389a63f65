"""Word lists of the example model (weights are logit evidence per occurrence)."""

POSITIVE: dict[str, float] = {
    w: 1.3
    for w in """
    good great excellent amazing wonderful fantastic superb outstanding brilliant
    delightful love loved loves lovely enjoy enjoyed enjoyable pleasant perfect best
    beautiful charming impressive awesome happy glad satisfied recommend recommended
    helpful friendly fast reliable smooth clean comfortable fun favorite worth
    masterpiece stunning gorgeous joy joyful terrific marvelous exceptional solid
    easy intuitive elegant polished thrilled exciting refreshing heartwarming
    """.split()
}
POSITIVE.update(
    {w: 0.8 for w in "nice fine decent pleased okay improved works worked tasty fresh".split()}
)

NEGATIVE: dict[str, float] = {
    w: 1.3
    for w in """
    bad terrible awful horrible poor worst hate hated hates disappointing disappointed
    boring dull broken useless waste wasted annoying frustrating slow rude dirty
    uncomfortable painful ugly mess messy failed fails fail unreliable buggy crash
    crashed crashes refund angry sad unhappy regret mediocre bland stale overpriced
    disaster nightmare pathetic lousy dreadful tedious confusing clunky noisy
    """.split()
}
NEGATIVE.update(
    {w: 0.8 for w in "problem problems issue issues late cold cheap weak flawed".split()}
)

NEUTRAL: list[str] = """
a an the this that these those it its is was were are be been being am i we you they he she
my our your their his her me us them to of in on at for with by from about as into over after
before during under again very really quite so too rather just still also even ever never not no
and but or because although though while if then than when where which who what how why all
any some most more less much many few each every other another such only own same both
movie film show series book story plot ending acting actors cast music soundtrack scene scenes
phone laptop app update software screen battery camera keyboard device product order package
delivery shipping price hotel room staff service restaurant food meal dinner lunch breakfast
coffee menu waiter table flight airline seat trip vacation beach city tour guide course class
teacher lesson game level graphics design support team customer manager call wait time day
week month year experience quality performance feature features version interface setup
install process weather park concert show ticket store shop car ride driver bus train station
stay visit purchase item items box size color fit shoes jacket shirt bag gift kids family
friends people everyone nothing something everything thing things way part parts lot bit
overall today yesterday tonight first last new old whole entire final second third one two
three five ten hours minutes days really truly absolutely totally completely somewhat slightly
fairly mostly honestly simply definitely probably arrived came went felt looked seemed made
got had has have did do does went tried used bought watched read played ordered stayed
visited took gave said told will would could should might can may must let make
""".split()
